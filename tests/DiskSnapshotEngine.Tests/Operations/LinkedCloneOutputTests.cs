using System.Runtime.Versioning;
using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Operations;

/// <summary>A linked clone refuses an output path that exists as anything (a dangling link, a FIFO) as create and a full clone do: exit 16, parent unchanged.</summary>
[UnsupportedOSPlatform("windows")]
public class LinkedCloneOutputTests
{
    [LinuxFact("makes a FIFO with mkfifo")]
    public async Task A_linked_clone_onto_a_dangling_link_or_a_fifo_is_refused_as_existing()
    {
        using var dir = new TempDirectory("linked-output");
        string golden = dir.File("g.vhdx"), dangling = dir.File("d.vhdx"), fifo = dir.File("f.vhdx");
        await CliRunner.OkAsync("create", golden, "--size", "8M");
        File.CreateSymbolicLink(dangling, "nowhere.vhdx");
        ExternalTool.RunChecked("mkfifo", fifo);
        foreach (var output in new[] { dangling, fifo })
        {
            var r = await CliRunner.RunAsync("clone", "--linked", golden, output);
            Assert.True(r.ExitCode == 16 && r.StdErr.Contains("the file already exists; refusing to overwrite it"), r.ToString());
        }
        Assert.False((await CliRunner.InfoAsync(golden)).GetProperty("sealed").GetBoolean());
    }
}
