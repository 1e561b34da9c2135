using DiskSnapshotEngine.Operations;
using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Operations;

/// <summary>
/// The end of a merge through a link: the journal goes before the image's own link, so a run stopped between the two
/// leaves a dangling link (nothing to finish), never a journal beside a file no name leads to any more.
/// </summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class MergeEndOrderTests
{
    /// <summary>
    /// The journal is made immutable (chattr +i), so its delete fails: the stop a kill at that step leaves. The rerun
    /// under the link's name then finishes, removing the link and the journal.
    /// </summary>
    [RootFact("makes the journal immutable (chattr +i)")]
    public async Task A_merge_through_a_link_stopped_at_its_journal_delete_finishes_on_rerun_under_the_link()
    {
        using var dir = new TempDirectory("merge-end-order");
        var (g, real, link) = LinkedTop.Make(dir);
        // The remove phase reached (a kill after the relink), then the journal's delete fails.
        (MergePlanner.Plan(link, null, new MergeOptions()) with { Phase = "remove" }).Save();
        string journal = real + OperationJournal.Suffix;
        ExternalTool.RunChecked("chattr", "+i", journal);
        try
        {
            var stopped = await CliRunner.RunAsync("merge", link);
            Assert.True(stopped.ExitCode != 0, stopped.ToString());
        }
        finally { ExternalTool.RunChecked("chattr", "-i", journal); }
        Assert.False(File.Exists(real), "the merged file was not removed before the stop");

        var rerun = await CliRunner.RunAsync("merge", link);
        Assert.True(rerun.ExitCode == 0, rerun.ToString());
        Assert.False(File.Exists(journal), "the journal is left");
        Assert.Null(new FileInfo(link).LinkTarget);
        ExternalTool.RunChecked("qemu-img", "check", g);
    }
}
