using System.Text.Json;
using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Operations;

/// <summary>The operation verbs end to end through the CLI entry point: outputs, --json shapes and exit codes.</summary>
public class OpsCliTests
{
    private const long Size = 4L << 20;

    private static (string Top, byte[] Model) Chain(TempDirectory dir)
    {
        var rng = new Random(51);
        var model = new byte[Size];
        OpsKit.CreateBase(dir.File("base.vdi"), Size);
        OpsKit.RandomWrites(dir.File("base.vdi"), rng, 4, model);
        OpsKit.CreateChild(dir.File("top.vdi"), dir.File("base.vdi"));
        OpsKit.RandomWrites(dir.File("top.vdi"), rng, 4, model);
        return (dir.File("top.vdi"), model);
    }

    [Fact]
    public async Task No_sync_clone_and_export_publish_the_same_bytes_and_leave_no_partial_file()
    {
        using var dir = new TempDirectory("ops-cli");
        var (top, model) = Chain(dir);
        foreach (var ext in new[] { ".vhdx", ".vdi", ".qcow2", ".raw" })
        {
            var clone = await CliRunner.RunAsync("clone", top, dir.File("fast" + ext), "--no-sync");
            Assert.True(clone.ExitCode == 0, clone.ToString());
            OpsKit.AssertContent(model, dir.File("fast" + ext), "the --no-sync clone to " + ext);
        }
        // --sync is the default now and stays accepted; --no-sync gives the same file.
        foreach (var flag in new[] { "--no-sync", "--sync" })
        {
            string output = dir.File("out" + flag + ".raw");
            var export = await CliRunner.RunAsync("export", top, output, flag);
            Assert.True(export.ExitCode == 0, export.ToString());
            Assert.Equal(ContentHash.Of(model), ContentHash.OfFile(output));
        }
        Assert.Empty(Directory.GetFiles(dir.Path, "*.dse-partial"));
    }

    [Fact]
    public async Task Clone_compare_and_map_through_the_cli()
    {
        using var dir = new TempDirectory("ops-cli");
        var (top, model) = Chain(dir);
        var clone = await CliRunner.RunAsync("clone", top, dir.File("flat.vhdx"), "--json");
        Assert.True(clone.ExitCode == 0, clone.ToString());
        OpsKit.AssertContent(model, dir.File("flat.vhdx"), "the CLI clone");

        var same = await CliRunner.RunAsync("compare", top, dir.File("flat.vhdx"));
        Assert.Equal(0, same.ExitCode);
        Assert.Contains("identical", same.StdOut);

        var empty = dir.File("empty.vdi");
        OpsKit.CreateBase(empty, Size);
        long first = Array.FindIndex(model, b => b != 0);
        var differ = await CliRunner.RunAsync("compare", top, empty, "--json");
        Assert.Equal(1, differ.ExitCode);
        using (var doc = JsonDocument.Parse(differ.StdOut))
        {
            Assert.False(doc.RootElement.GetProperty("identical").GetBoolean());
            Assert.Equal(first, doc.RootElement.GetProperty("firstDifference").GetInt64());
        }

        var map = await CliRunner.RunAsync("map", top, "--json");
        Assert.True(map.ExitCode == 0, map.ToString());
        using (var doc = JsonDocument.Parse(map.StdOut))
        {
            var entries = doc.RootElement.EnumerateArray().ToList();
            Assert.Equal(Size, entries.Sum(e => e.GetProperty("length").GetInt64()));
            Assert.Contains(entries, e => e.GetProperty("kind").GetString() == "data" && e.GetProperty("file").GetString() == top);
        }
    }

    [Fact]
    public async Task Merge_refusal_and_rebase_refusal_have_their_exit_codes()
    {
        using var dir = new TempDirectory("ops-cli-codes");
        var (top, model) = Chain(dir);
        OpsKit.CreateChild(dir.File("sibling.vdi"), dir.File("base.vdi"));
        var refused = await CliRunner.RunAsync("merge", top);
        Assert.Equal(15, refused.ExitCode);
        Assert.Contains("sibling.vdi", refused.StdErr);

        OpsKit.CreateBase(dir.File("other.vdi"), Size);
        var unsafeRebase = await CliRunner.RunAsync("rebase", top, "--parent", dir.File("other.vdi"), "--unsafe");
        Assert.Equal(10, unsafeRebase.ExitCode);
        OpsKit.AssertContent(model, top, "after refused operations");

        File.Delete(dir.File("sibling.vdi"));
        var merged = await CliRunner.RunAsync("merge", top, "--json");
        Assert.True(merged.ExitCode == 0, merged.ToString());
        OpsKit.AssertContent(model, dir.File("base.vdi"), "after the CLI merge");
    }

    [Fact]
    public async Task Snapshot_verbs_through_the_cli()
    {
        using var dir = new TempDirectory("ops-cli-snap");
        string disk = dir.File("vm.vdi");
        var rng = new Random(52);
        var model = new byte[Size];
        OpsKit.CreateBase(disk, Size);
        OpsKit.RandomWrites(disk, rng, 3, model);
        var saved = (byte[])model.Clone();
        Assert.Equal(0, (await CliRunner.RunAsync("snapshot", "create", disk, "--name", "clean", "--description", "fresh install")).ExitCode);
        OpsKit.RandomWrites(disk, rng, 3, model);

        var list = await CliRunner.RunAsync("snapshot", "list", disk, "--json");
        Assert.True(list.ExitCode == 0, list.ToString());
        using (var doc = JsonDocument.Parse(list.StdOut))
        {
            var s = doc.RootElement.GetProperty("snapshots").EnumerateArray().Single();
            Assert.Equal("clean", s.GetProperty("name").GetString());
            Assert.Equal("fresh install", s.GetProperty("description").GetString());
            Assert.True(s.GetProperty("isCurrent").GetBoolean());
        }
        var text = await CliRunner.RunAsync("snapshot", "list", disk);
        Assert.Contains("* clean", text.StdOut);
        Assert.Contains("current state", text.StdOut);

        Assert.Equal(0, (await CliRunner.RunAsync("rollback", disk)).ExitCode);
        OpsKit.AssertContent(saved, disk, "after rollback");
        Assert.Equal(14, (await CliRunner.RunAsync("snapshot", "revert", disk, "--name", "nope")).ExitCode);
        Assert.Equal(0, (await CliRunner.RunAsync("snapshot", "delete", disk, "--name", "clean")).ExitCode);
        OpsKit.AssertContent(saved, disk, "after deleting the only snapshot");
        Assert.Equal(0, (await CliRunner.RunAsync("snapshot", "repair", disk)).ExitCode);
        Assert.Equal(0, (await CliRunner.RunAsync("compact", disk)).ExitCode);
        OpsKit.AssertContent(saved, disk, "after compact");
    }

    [Fact]
    public async Task Snapshot_repair_exits_0_for_a_lost_catalog_and_1_when_a_snapshot_image_does_not_open()
    {
        using var dir = new TempDirectory("ops-cli-repair");
        string disk = dir.File("vm.vdi");
        OpsKit.CreateBase(disk, Size);
        OpsKit.RandomWrites(disk, new Random(61), 2, new byte[Size]);
        Assert.Equal(0, (await CliRunner.RunAsync("snapshot", "create", disk, "--name", "a")).ExitCode);
        File.WriteAllText(dir.File("vm.vdi.snapshots.json"), "{ not json");

        var lost = await CliRunner.RunAsync("snapshot", "repair", disk, "--json");
        Assert.True(lost.ExitCode == 0, lost.ToString());
        using (var doc = JsonDocument.Parse(lost.StdOut))
        {
            var problem = doc.RootElement.GetProperty("problems").EnumerateArray().Single();
            Assert.Equal("warning", problem.GetProperty("severity").GetString());
            Assert.Equal("catalog", problem.GetProperty("structure").GetString());
        }

        // Damage the snapshot layer's header: repair still rebuilds what it can, but reports an error and exits 1.
        string layer = Directory.GetFiles(dir.Path, "vm.snap-*.vdi").Single();
        using (var f = File.OpenWrite(layer)) f.Write(new byte[512]);
        var broken = await CliRunner.RunAsync("snapshot", "repair", disk);
        Assert.True(broken.ExitCode == 1, broken.ToString());
        Assert.Contains($"error: {layer}: image: cannot be opened", broken.StdOut);
    }
}
