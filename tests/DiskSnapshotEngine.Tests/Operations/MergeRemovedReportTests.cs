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
        string vms = Directory.CreateDirectory(dir.File("vms")).FullName, big = Directory.CreateDirectory(dir.File("big")).FullName;
        string g = Path.Combine(vms, "g.qcow2"), real = Path.Combine(big, "t.qcow2"), link = Path.Combine(vms, "t.qcow2");
        ExternalTool.RunChecked("qemu-img", "create", "-q", "-f", "qcow2", g, "8M");
        ExternalTool.RunChecked("qemu-img", "create", "-q", "-f", "qcow2", "-b", g, "-F", "qcow2", real);
        File.CreateSymbolicLink(link, "../big/t.qcow2");

        var run = await CliRunner.RunAsync("merge", link, "--json");
        Assert.True(run.ExitCode == 0, run.ToString());
        var doc = JsonDocument.Parse(run.StdOut).RootElement;
        Assert.Equal([real], doc.GetProperty("removed").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal([link], doc.GetProperty("removedLinks").EnumerateArray().Select(e => e.GetString()));
    }
}
