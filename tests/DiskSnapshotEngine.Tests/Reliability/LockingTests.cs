using System.Diagnostics;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.IO;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Reliability;

/// <summary>
/// Locking against real second processes: flock(1) from util-linux takes the same kind of lock (flock(2)) that the
/// engine takes, so it stands for another dse process holding or wanting the image.
/// </summary>
public class LockingTests
{
    [RequiresToolFact("flock")]
    public void A_writer_excludes_other_processes_readers_and_writers()
    {
        using var dir = new TempDirectory();
        var path = dir.File("disk.img");
        using var layer = DiskImage.Create(path, new ImageCreateOptions(1 << 20));
        Assert.Equal(1, ExternalTool.Run("flock", "--nonblock", "--shared", path, "true").ExitCode);
        Assert.True(LockProbe.IsHeld(path));
    }

    [RequiresToolFact("flock")]
    public void Readers_share_and_a_reader_elsewhere_makes_a_write_open_fail_at_once_naming_the_holder()
    {
        using var dir = new TempDirectory();
        var path = dir.File("disk.img");
        DiskImage.Create(path, new ImageCreateOptions(1 << 20)).Dispose();
        using var holder = Hold(path, shared: true);

        using (var reader = DiskImage.OpenLayer(path, writable: false))
            Assert.False(reader.IsWritable);

        var sw = Stopwatch.StartNew();
        var ex = Assert.Throws<DiskImageException>(() => DiskImage.OpenLayer(path, writable: true));
        sw.Stop();
        Assert.Equal(ErrorKind.Locked, ex.Kind);
        Assert.Contains(path, ex.Message);
        Assert.Contains($"pid {holder.Id}", ex.Message);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(2), $"lock conflict took {sw.Elapsed}");
    }

    [RequiresToolFact("flock")]
    public void A_writer_elsewhere_makes_a_read_open_fail()
    {
        using var dir = new TempDirectory();
        var path = dir.File("disk.img");
        DiskImage.Create(path, new ImageCreateOptions(1 << 20)).Dispose();
        using var holder = Hold(path, shared: false);
        var ex = Assert.Throws<DiskImageException>(() => DiskImage.OpenLayer(path, writable: false));
        Assert.Equal(ErrorKind.Locked, ex.Kind);
        Assert.Contains("writing", ex.Message);
    }

    // Starts `flock [-s|-x] FILE sleep 30` and waits until it holds the lock.
    private static HeldLock Hold(string path, bool shared)
    {
        var psi = new ProcessStartInfo("flock") { UseShellExecute = false };
        foreach (var a in new[] { shared ? "--shared" : "--exclusive", path, "sleep", "30" }) psi.ArgumentList.Add(a);
        var p = Process.Start(psi)!;
        try
        {
            LockProbe.WaitUntilHeld(path, seconds: 10);
            return new HeldLock(p);
        }
        catch
        {
            p.Kill();
            throw;
        }
    }

    private sealed class HeldLock(Process process) : IDisposable
    {
        public int Id => process.Id;

        public void Dispose()
        {
            try { process.Kill(entireProcessTree: true); process.WaitForExit(5000); }
            catch (InvalidOperationException) { }
            process.Dispose();
        }
    }

    /// <summary>A symbolic-link loop given to a verb that locks before it opens is named as a loop (exit 8), not an internal error.</summary>
    [Fact]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public async Task A_link_loop_is_named_not_an_internal_error()
    {
        using var dir = new TempDirectory();
        string loop = Path.Combine(dir.Path, "loop.qcow2");
        File.CreateSymbolicLink(loop, "loop.qcow2");
        var run = await DiskSnapshotEngine.Tests.Cli.CliRunner.RunAsync("merge", loop);
        Assert.True(run.ExitCode == 8, run.ToString());
        Assert.Contains("symbolic-link loop", run.StdErr);
    }
}
