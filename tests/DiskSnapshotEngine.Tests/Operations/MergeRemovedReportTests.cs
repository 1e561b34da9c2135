using System.Text.Json;
using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Operations;

/// <summary>A merge through a link reports the file it deleted as removed, and the link on its own line.</summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class MergeRemovedReportTests
{
    [RequiresToolFact("qemu-img")]
    public async Task A_merged_layer_named_through_a_link_is_reported_by_its_file()
    {
        using var dir = new TempDirectory("merge-removed-report");
        var (g, real, link) = LinkedTop.Make(dir);

        var run = await CliRunner.RunAsync("merge", link, "--json");
        Assert.True(run.ExitCode == 0, run.ToString());
        var doc = JsonDocument.Parse(run.StdOut).RootElement;
        Assert.Equal([real], doc.GetProperty("removed").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal([link], doc.GetProperty("removedLinks").EnumerateArray().Select(e => e.GetString()));
    }
}
