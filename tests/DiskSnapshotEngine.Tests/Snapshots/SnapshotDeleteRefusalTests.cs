using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Snapshots;

/// <summary>A snapshot delete refused for the layers' sizes leaves no pending delete: the catalog and every file are unchanged.</summary>
public class SnapshotDeleteRefusalTests
{
    private const int ExitUnsupported = 5;

    [RequiresToolTheory("qemu-io")]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_delete_refused_for_sizes_changes_nothing_and_revert_still_works(bool regrown)
    {
        using var dir = new TempDirectory("snapshot-delete-refused");
        string disk = dir.File("disk.qcow2"), data = dir.File("a.bin");
        File.WriteAllBytes(data, RandomData.Bytes(8 << 20, 71));
        async Task Dse(params string[] args)
        {
            var r = await CliRunner.RunAsync(args);
            Assert.True(r.ExitCode == 0, $"dse {string.Join(' ', args)}: {r}");
        }
        await Dse("create", disk, "--size", "8M");
        await Dse("write", disk, "--offset", "0", "--input", data);
        File.Delete(data);
        await Dse("snapshot", "create", disk, "--name", "s1");
        // Zeros in the disk's own layer hide s1's data past 4M, so the disk may shrink there.
        ExternalTool.RunChecked("qemu-io", "-f", "qcow2", "-c", "write -z 4M 4M", disk);
        await Dse("resize", disk, "--size", "4M", "--shrink");
        if (regrown)
        {
            // s2 (4M) between s1 (8M, data past 4M) and the disk: committing s2 into s1 would show that data to the disk.
            await Dse("snapshot", "create", disk, "--name", "s2");
            await Dse("resize", disk, "--size", "8M");
        }
        // Otherwise the disk (4M) would be replaced by s1's larger layer.
        var before = Directory.GetFiles(dir.Path, "*", SearchOption.AllDirectories).ToDictionary(f => f, File.ReadAllBytes);

        var refused = await CliRunner.RunAsync("snapshot", "delete", disk, "--name", "s1");
        Assert.True(refused.ExitCode == ExitUnsupported, refused.ToString());
        Assert.Equal(before.Keys.Order(), Directory.GetFiles(dir.Path, "*", SearchOption.AllDirectories).Order());
        foreach (var (file, bytes) in before)
            Assert.True(bytes.AsSpan().SequenceEqual(File.ReadAllBytes(file)), $"{Path.GetFileName(file)} changed");
        await Dse("snapshot", "revert", disk, "--name", "s1");
    }
}
