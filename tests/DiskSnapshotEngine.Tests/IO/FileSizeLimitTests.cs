using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.IO;

/// <summary>Runs only where the temporary folder is on ext4, whose files end at 16 TiB (with 4 KiB blocks).</summary>
public sealed class OnExt4FactAttribute : FactAttribute
{
    public OnExt4FactAttribute()
    {
        if (!OperatingSystem.IsLinux()) { Skip = "Linux only: needs ext4's 16 TiB file size limit"; return; }
        var fs = ExternalTool.Run("stat", "-f", "-c", "%T", Path.GetTempPath());
        if (fs.ExitCode != 0 || !fs.StdOut.Contains("ext2/ext3")) Skip = $"the temporary folder is on {fs.StdOut.Trim()}, not ext4: no 16 TiB file limit to hit";
    }
}

/// <summary>
/// Issue 10 §5.4: raw outputs larger than the file system allows exited 70 ("Specified file length was too large") and
/// could leave a partial file. Now a typed DiskFull (exit 13) naming the size the file system refused, nothing left behind.
/// </summary>
public class FileSizeLimitTests
{
    private const int ExitDiskFull = 13;

    [OnExt4Fact]
    public async Task Raw_outputs_past_the_file_system_limit_are_typed_errors_and_leave_nothing()
    {
        using var dir = new TempDirectory("fs-limit");
        var created = await CliRunner.RunAsync("create", dir.File("z.raw"), "--size", "16T");
        Assert.Equal(ExitDiskFull, created.ExitCode);
        Assert.Contains("larger than the file system allows", created.StdErr);
        Assert.Contains("17592186044416 bytes", created.StdErr);

        Assert.Equal(0, (await CliRunner.RunAsync("create", dir.File("big.vhdx"), "--size", "64T")).ExitCode);
        foreach (var verb in new[] { "clone", "export" })
        {
            var r = await CliRunner.RunAsync(verb, dir.File("big.vhdx"), dir.File(verb + ".raw"));
            Assert.Equal(ExitDiskFull, r.ExitCode);
            Assert.Contains("larger than the file system allows", r.StdErr);
        }
        Assert.Equal(new[] { dir.File("big.vhdx") }, Directory.GetFiles(dir.Path));
    }
}
