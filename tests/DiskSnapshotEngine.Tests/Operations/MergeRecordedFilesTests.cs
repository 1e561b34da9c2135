using DiskSnapshotEngine.Operations;
using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Operations;

/// <summary>
/// A rerun of an interrupted merge removes only the files its plan recorded, identified by (device, inode): a file
/// replaced since at a recorded path (a new image made there, a layer replaced by a link to another file) is left, and
/// the rerun says so (exit 11) instead of reporting the interrupted run as finished. The journals are the planner's own,
/// saved in phase "remove" as a kill after the relink phase leaves them.
/// </summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class MergeRecordedFilesTests
{
    // g <- m <- t, the journal of "merge t --into g" stopped before its remove phase ran.
    private static (TempDirectory Dir, string G, string M, string T) Stopped(string name)
    {
        var dir = new TempDirectory(name);
        string g = dir.File("g.qcow2"), m = dir.File("m.qcow2"), t = dir.File("t.qcow2");
        ExternalTool.RunChecked("qemu-img", "create", "-q", "-f", "qcow2", g, "8M");
        ExternalTool.RunChecked("qemu-img", "create", "-q", "-f", "qcow2", "-b", "g.qcow2", "-F", "qcow2", m);
        ExternalTool.RunChecked("qemu-img", "create", "-q", "-f", "qcow2", "-b", "m.qcow2", "-F", "qcow2", t);
        var journal = MergePlanner.Plan(t, g, new MergeOptions()) with { Phase = "remove" };
        journal.Save();
        Assert.True(File.Exists(t + OperationJournal.Suffix));
        return (dir, g, m, t);
    }

    [RequiresToolFact("qemu-img")]
    public async Task A_new_image_made_where_a_stopped_merge_left_its_journal_is_not_removed()
    {
        var (dir, _, m, t) = Stopped("recorded-new-image");
        using var owned = dir;
        // The user makes a new image and moves it to the same path, the journal still beside it. (Made elsewhere first:
        // a file created right after the old one's delete may get its inode back, which (device, inode) cannot tell apart.)
        File.Delete(m);
        string made = dir.File("new.qcow2");
        ExternalTool.RunChecked("qemu-img", "create", "-q", "-f", "qcow2", made, "4M");
        File.Move(made, t, overwrite: true);
        string hash = ContentHash.OfFile(t);

        var rerun = await CliRunner.RunAsync("merge", t);
        Assert.True(rerun.ExitCode == 11, rerun.ToString());
        Assert.Contains($"{t} is not the file the interrupted merge recorded", rerun.StdErr);
        Assert.DoesNotContain("finished", rerun.StdErr);
        Assert.Equal(hash, ContentHash.OfFile(t));
        Assert.True(File.Exists(t + OperationJournal.Suffix), "the journal was removed");
    }

    [RequiresToolFact("qemu-img")]
    public async Task A_merged_layer_replaced_by_a_link_is_not_followed_to_the_file_it_names()
    {
        var (dir, _, m, t) = Stopped("recorded-link");
        using var owned = dir;
        // The middle layer's plain file is replaced by a link to a file the merge never saw.
        string other = dir.File("other.qcow2");
        ExternalTool.RunChecked("qemu-img", "create", "-q", "-f", "qcow2", other, "4M");
        string hash = ContentHash.OfFile(other);
        File.Delete(m);
        File.CreateSymbolicLink(m, "other.qcow2");

        var rerun = await CliRunner.RunAsync("merge", t);
        Assert.True(rerun.ExitCode == 11, rerun.ToString());
        Assert.Contains(m, rerun.StdErr);
        Assert.Equal(hash, ContentHash.OfFile(other));
        Assert.Equal("other.qcow2", new FileInfo(m).LinkTarget);
        Assert.True(File.Exists(t), "the image was removed");
    }
}
