using System.Diagnostics;
using DiskSnapshotEngine.Cli;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Nbd;

/// <summary><c>dse mount</c>: the chain as a file through nbdfuse, written through, unmounted on SIGTERM; and a clear error without nbdfuse.</summary>
public class NbdMountTests
{
    [RequiresFuseMountFact("nbdfuse")]
    public async Task A_mounted_chain_reads_like_the_export_takes_writes_and_unmounts_on_sigterm()
    {
        using var dir = new TempDirectory("nbd-mount");
        var paths = NbdTestImages.Chain(dir.Path, "vhdx", 2, 32L << 20, 1 << 20, seed: 21);
        var parentHash = ContentHash.OfFile(paths[0]);
        string mnt = Directory.CreateDirectory(dir.File("mnt")).FullName;
        string file = Path.Combine(mnt, "layer1.raw");
        using (var p = CliRunner.Start("mount", paths[^1], mnt))
        try
        {
            p.StandardInput.Close();
            var stderr = p.StandardError.ReadToEndAsync();
            var line = await p.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromMinutes(1));
            Assert.True(line is not null && line.StartsWith($"mounted {file} (read-write)", StringComparison.Ordinal), line);

            ExternalTool.RunChecked("cp", file, dir.File("copy.raw"));
            var data = RandomData.Bytes(300_000, 5);
            File.WriteAllBytes(dir.File("data.bin"), data);
            ExternalTool.RunChecked("dd", $"if={dir.File("data.bin")}", $"of={file}", "bs=4096", "seek=1000", "conv=notrunc,fsync", "status=none");

            ExternalTool.RunChecked("kill", "-TERM", p.Id.ToString());
            using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(1));
            await p.WaitForExitAsync(timeout.Token);
            Assert.True(p.ExitCode == 0, await stderr);
            Assert.False(File.Exists(file), "the mount is still there");
        }
        finally
        {
            // A failed assertion must not leave the mount behind: SIGTERM makes dse unmount it.
            if (!p.HasExited)
            {
                ExternalTool.Run("kill", "-TERM", p.Id.ToString());
                if (!p.WaitForExit(TimeSpan.FromSeconds(30))) p.Kill(entireProcessTree: true);
            }
        }
        byte[] all;
        using (var chain = DiskImage.Open(paths[^1]))
        {
            Assert.False(chain.Check().HasErrors);
            all = NbdTestImages.ReadAll(chain);
        }
        Assert.True(all.AsSpan(4096 * 1000, 300_000).SequenceEqual(RandomData.Bytes(300_000, 5)), "the write through the mount is not in the image");
        var copy = File.ReadAllBytes(dir.File("copy.raw"));
        Assert.Equal(all.Length, copy.Length);
        Assert.True(copy.AsSpan(0, 4096 * 1000).SequenceEqual(all.AsSpan(0, 4096 * 1000)), "the mounted file read differently from the chain");
        Assert.Equal(parentHash, ContentHash.OfFile(paths[0]));
    }

    /// <summary>A mount point that does not exist is said to be missing (exit 8), one that is a file not to be a folder, a dangling link to be one.</summary>
    [RequiresToolFact("nbdfuse")]
    public async Task A_missing_mount_point_is_named_missing_and_a_file_not_a_directory()
    {
        using var dir = new TempDirectory("nbd-mount-point");
        var image = dir.File("d.vhdx");
        DiskImage.Create(image, new DiskSnapshotEngine.Formats.ImageCreateOptions(8 << 20)).Dispose();
        string missing = dir.File("no-such-dir"), file = dir.File("a-file");
        await File.WriteAllTextAsync(file, "x");

        var absent = await CliRunner.RunAsync("mount", image, missing);
        Assert.True(absent.ExitCode == ExitCodes.ForKind(ErrorKind.FileNotFound), absent.ToString());
        Assert.Contains($"{missing}: the mount point does not exist", absent.StdErr);
        var notDir = await CliRunner.RunAsync("mount", image, file);
        Assert.True(notDir.ExitCode == ExitCodes.ForKind(ErrorKind.FileNotFound), notDir.ToString());
        Assert.Contains($"{file}: the mount point is not a directory", notDir.StdErr);
        string dangling = dir.File("dangling");
        File.CreateSymbolicLink(dangling, missing);
        var link = await CliRunner.RunAsync("mount", image, dangling);
        Assert.True(link.ExitCode == ExitCodes.ForKind(ErrorKind.FileNotFound), link.ToString());
        Assert.Contains($"{dangling}: the mount point is a dangling symbolic link (to {missing}, which does not exist)", link.StdErr);
    }

    [Fact]
    public async Task Without_nbdfuse_mount_says_what_to_install()
    {
        using var dir = new TempDirectory("nbd-mount");
        string image = dir.File("d.vdi");
        DiskImage.Create(image, new DiskSnapshotEngine.Formats.ImageCreateOptions(8 << 20)).Dispose();
        var psi = new ProcessStartInfo(ExternalTool.Find("dotnet") ?? "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in new[] { CliRunner.DsePath, "mount", image, dir.Path }) psi.ArgumentList.Add(a);
        psi.Environment["PATH"] = Path.Combine(dir.Path, "empty-path");
        using var p = Process.Start(psi)!;
        var stderr = await p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        Assert.Equal(ExitCodes.ForKind(ErrorKind.ExternalTool), p.ExitCode);
        Assert.Contains("nbdfuse, which is not installed (apt-get install libnbd-bin)", stderr);
    }
}
