using System.Text.Json;
using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;
using DiskSnapshotEngine.Tests.Operations;

namespace DiskSnapshotEngine.Tests.Formats.Vhd;

/// <summary>
/// Every verb on VHD layers, through the CLI entry point, each result checked byte for byte against a model:
/// create, info, write, clone to and from VHD, linked clone, map, check, compare, pull, merge, rebase, compact, snapshots.
/// </summary>
public sealed class VhdVerbTests : IDisposable
{
    private const long Size = 6L << 20;
    private readonly TempDirectory _dir = new("vhd-verbs");

    public void Dispose() => _dir.Dispose();

    private static async Task<CliResult> Ok(params string[] args)
    {
        var r = await CliRunner.RunAsync(args);
        Assert.True(r.ExitCode == 0, $"dse {string.Join(' ', args)}: {r}");
        return r;
    }

    /// <summary>base.vhd - mid.vhd - top.vhd, each written at random; returns the model of top.</summary>
    private async Task<byte[]> Chain(int seed)
    {
        var rng = new Random(seed);
        var model = new byte[Size];
        await Ok("create", _dir.File("base.vhd"), "--size", Size.ToString());
        OpsKit.RandomWrites(_dir.File("base.vhd"), rng, 5, model);
        await Ok("clone", "--linked", _dir.File("base.vhd"), _dir.File("mid.vhd"));
        OpsKit.RandomWrites(_dir.File("mid.vhd"), rng, 5, model);
        await Ok("create", _dir.File("top.vhd"), "--parent", _dir.File("mid.vhd"));
        OpsKit.RandomWrites(_dir.File("top.vhd"), rng, 5, model);
        return model;
    }

    [Fact]
    public async Task Info_map_check_and_clones_to_and_from_VHD()
    {
        var model = await Chain(1);
        string top = _dir.File("top.vhd");
        var info = await Ok("info", top, "--chain", "--json");
        using (var doc = JsonDocument.Parse(info.StdOut))
            Assert.All(doc.RootElement.GetProperty("layers").EnumerateArray(), l => Assert.Equal("vhd", l.GetProperty("format").GetString()));
        await Ok("check", top);
        var map = await Ok("map", top, "--json");
        using (var doc = JsonDocument.Parse(map.StdOut))
            Assert.Equal(3, doc.RootElement.EnumerateArray().Where(e => e.GetProperty("kind").GetString() == "data")
                .Select(e => e.GetProperty("file").GetString()).Distinct().Count());

        // VHD chain to VDI, VDI back to a VHD chosen with --format, and to a fixed VHD.
        await Ok("clone", top, _dir.File("flat.vdi"));
        await Ok("clone", _dir.File("flat.vdi"), _dir.File("back.img.vhd"), "--format", "vhd");
        await Ok("clone", top, _dir.File("fixed.vhd"), "--type", "fixed");
        foreach (var f in new[] { "flat.vdi", "back.img.vhd", "fixed.vhd" })
        {
            OpsKit.AssertContent(model, _dir.File(f), f);
            Assert.Equal(0, (await CliRunner.RunAsync("compare", top, _dir.File(f))).ExitCode);
        }
        using (var fixedChain = DiskImage.Open(_dir.File("fixed.vhd")))
            Assert.Equal(ImageType.Fixed, fixedChain.Top.Type);
        Assert.Equal(Size + 512, new FileInfo(_dir.File("fixed.vhd")).Length);
        // A VHDX source flattened into a VHD.
        await Ok("clone", top, _dir.File("flat.vhdx"));
        await Ok("clone", _dir.File("flat.vhdx"), _dir.File("from-vhdx.vhd"));
        OpsKit.AssertContent(model, _dir.File("from-vhdx.vhd"), "VHDX to VHD");
        Assert.Equal(1, (await CliRunner.RunAsync("compare", _dir.File("base.vhd"), top)).ExitCode);
    }

    [Fact]
    public async Task Pull_merge_rebase_and_compact_keep_the_content()
    {
        var model = await Chain(2);
        string top = _dir.File("top.vhd"), mid = _dir.File("mid.vhd"), basePath = _dir.File("base.vhd");

        // Pull mid's data into top and relink top to base.
        await Ok("merge", "--pull", top);
        OpsKit.AssertContent(model, top, "after the pull");
        using (var chain = DiskImage.Open(top)) Assert.Equal(2, chain.Layers.Count);
        File.Delete(mid);

        // Rebase onto an independent copy of base (another identity: safe mode copies where the parents differ).
        await Ok("clone", basePath, _dir.File("other.vhd"));
        await Ok("rebase", top, "--parent", _dir.File("other.vhd"));
        OpsKit.AssertContent(model, top, "after the rebase");
        using (var chain = DiskImage.Open(top)) Assert.Equal(Path.GetFullPath(_dir.File("other.vhd")), chain.Layers[1].Path);

        // Merge top into its parent, which then holds the whole content.
        await Ok("merge", top);
        OpsKit.AssertContent(model, _dir.File("other.vhd"), "after the merge");
        Assert.False(File.Exists(top));

        // Compact: zero most of the disk, compact, the file shrinks and the content stays.
        string other = _dir.File("other.vhd");
        using (var chain = DiskImage.Open(other, OpenOptions.ReadWrite)) chain.WriteZeroes(0, 4L << 20);
        Array.Clear(model, 0, 4 << 20);
        long before = new FileInfo(other).Length;
        await Ok("compact", other);
        Assert.True(new FileInfo(other).Length < before, $"{new FileInfo(other).Length} >= {before}");
        OpsKit.AssertContent(model, other, "after the compact");
        var check = await Ok("check", other);
        Assert.Contains("no problems found", check.StdOut);
    }

    [Fact]
    public async Task Snapshots_of_a_VHD_disk_create_revert_and_delete()
    {
        string disk = _dir.File("disk.vhd");
        await Ok("create", disk, "--size", Size.ToString());
        var rng = new Random(3);
        var model = new byte[Size];
        OpsKit.RandomWrites(disk, rng, 4, model);
        var first = (byte[])model.Clone();
        // A linked clone names the disk by path: the snapshot relinks it to the layer that keeps this content.
        string clone = _dir.File("clone.vhd");
        await Ok("clone", "--linked", disk, clone);
        await Ok("snapshot", "create", disk, "--name", "one");
        OpsKit.AssertContent(first, clone, "the linked clone after the snapshot");
        using (var c = DiskImage.Open(clone)) Assert.NotEqual(Path.GetFullPath(disk), c.Layers[1].Path);
        OpsKit.RandomWrites(disk, rng, 4, model);
        await Ok("snapshot", "create", disk, "--name", "two");
        OpsKit.RandomWrites(disk, rng, 4, model);
        var list = await Ok("snapshot", "list", disk, "--json");
        Assert.Contains("\"two\"", list.StdOut);

        await Ok("snapshot", "revert", disk, "--name", "one");
        OpsKit.AssertContent(first, disk, "after reverting to one");
        await Ok("snapshot", "delete", disk, "--name", "two");
        OpsKit.AssertContent(first, disk, "after deleting two");
        OpsKit.AssertContent(first, clone, "the linked clone at the end");
        using var chain = DiskImage.Open(disk);
        Assert.All(chain.Layers, l => Assert.Equal(ImageFormat.Vhd, l.Format));
        Assert.False(chain.Check().HasErrors, string.Join("\n", chain.Check().Problems));
    }
}
