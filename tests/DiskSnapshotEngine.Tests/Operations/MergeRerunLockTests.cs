using System.Diagnostics;
using DiskSnapshotEngine.Operations;
using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Operations;

/// <summary>
/// A rerun of an interrupted merge locks the files its plan recorded, the files it removes: not the file a merged
/// layer's link was re-pointed at since (which it leaves alone, and which another reader may hold).
/// </summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class MergeRerunLockTests
{
    [RequiresToolFact("qemu-img", "flock")]
    public async Task A_rerun_locks_the_recorded_file_not_the_one_a_repointed_link_names_now()
    {
        using var dir = new TempDirectory("merge-rerun-lock");
        Directory.CreateDirectory(dir.File("real"));
        string g = dir.File("g.qcow2"), realM = dir.File("real/m.qcow2"), m = dir.File("m.qcow2"), t = dir.File("t.qcow2"), other = dir.File("other.qcow2");
        ExternalTool.RunChecked("qemu-img", "create", "-q", "-f", "qcow2", g, "8M");
        ExternalTool.RunChecked("qemu-img", "create", "-q", "-f", "qcow2", "-b", g, "-F", "qcow2", realM);
        File.CreateSymbolicLink(m, "real/m.qcow2");
        ExternalTool.RunChecked("qemu-img", "create", "-q", "-f", "qcow2", "-b", "m.qcow2", "-F", "qcow2", t);
        (MergePlanner.Plan(t, g, new MergeOptions()) with { Phase = "remove" }).Save();
        // The user re-points the middle layer's link at another file, which a reader holds meanwhile.
        ExternalTool.RunChecked("qemu-img", "create", "-q", "-f", "qcow2", other, "8M");
        File.Delete(m);
        File.CreateSymbolicLink(m, "other.qcow2");
        using var holder = Process.Start(new ProcessStartInfo("flock", ["-s", other, "sleep", "60"]))!;
        try
        {
            await Task.Delay(300);
            var rerun = await CliRunner.RunAsync("merge", t, "--into", g);
            Assert.True(rerun.ExitCode == 0, rerun.ToString());
            Assert.False(File.Exists(realM), "the recorded file was not removed");
            Assert.True(File.Exists(other));
            Assert.Equal("other.qcow2", new FileInfo(m).LinkTarget);
        }
        finally { holder.Kill(); await holder.WaitForExitAsync(); }
    }
}
