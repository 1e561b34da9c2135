using System.Text.Json;
using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;
using DiskSnapshotEngine.Tests.Operations;
using static DiskSnapshotEngine.Tests.Formats.Qcow2.Qcow2TestKit;

namespace DiskSnapshotEngine.Tests.Formats.Qcow2;

/// <summary>Every verb on qcow2 layers and mixed chains, through the CLI, with qemu-img as the second opinion.</summary>
public sealed class Qcow2VerbTests
{
    private const long Size = 8L * MiB;

    private static async Task<CliResult> Dse(params string[] args)
    {
        var r = await CliRunner.RunAsync(args);
        Assert.True(r.ExitCode == 0, $"dse {string.Join(' ', args)}: {r}");
        return r;
    }

    [RequiresToolFact("qemu-img")]
    public async Task Create_info_linked_clone_and_full_clones_to_and_from_qcow2()
    {
        using var dir = new TempDirectory("qcow2-verbs");
        var rng = new Random(1);
        var model = new byte[Size];
        string golden = dir.File("golden.vhdx");
        OpsKit.CreateBase(golden, Size);
        OpsKit.RandomWrites(golden, rng, 6, model);

        await Dse("create", dir.File("blank.qcow2"), "--size", "8M");
        AssertQemuCheckClean(dir.File("blank.qcow2"));
        await Dse("create", dir.File("vm1.qcow2"), "--parent", golden);
        await Dse("clone", "--linked", golden, dir.File("vm2.qcow2"));
        OpsKit.RandomWrites(dir.File("vm1.qcow2"), rng, 8, model);

        var info = await Dse("info", dir.File("vm1.qcow2"), "--json");
        using (var doc = JsonDocument.Parse(info.StdOut))
        {
            var root = doc.RootElement;
            Assert.Equal("qcow2", root.GetProperty("format").GetString());
            Assert.Equal("differencing", root.GetProperty("type").GetString());
            Assert.Equal(JsonValueKind.Null, root.GetProperty("parent").GetProperty("parentVersion").ValueKind);
            Assert.Equal("vhdx", root.GetProperty("parent").GetProperty("parentFormat").GetString());
            Assert.Equal("golden.vhdx", root.GetProperty("details").GetProperty("backingFile").GetString());
        }
        var text = await Dse("info", dir.File("vm1.qcow2"), "--verbose");
        Assert.Contains("none recorded", text.StdOut);

        // Full clones both ways, checked by content and by qemu.
        await Dse("clone", dir.File("vm1.qcow2"), dir.File("flat.qcow2"));
        await Dse("clone", dir.File("vm1.qcow2"), dir.File("flat.disk"), "--format", "qcow2");
        await Dse("clone", dir.File("flat.qcow2"), dir.File("flat.vdi"));
        foreach (var f in new[] { "vm1.qcow2", "flat.qcow2", "flat.disk", "flat.vdi" })
            OpsKit.AssertContent(model, dir.File(f), f);
        AssertQemuCheckClean(dir.File("flat.qcow2"));
        AssertQemuCheckClean(dir.File("vm1.qcow2"));
        OpsKit.AssertContent(OpsKit.ReadAll(golden), dir.File("vm2.qcow2"), "the untouched linked clone");
        await Dse("compare", dir.File("vm1.qcow2"), dir.File("flat.vdi"));
    }

    [RequiresToolFact("qemu-img")]
    public async Task Merge_into_a_qcow2_or_a_vhdx_parent_passes_qemu_check()
    {
        foreach (var parentExt in new[] { "qcow2", "vhdx" })
        {
            using var dir = new TempDirectory("qcow2-verbs");
            var rng = new Random(2);
            var model = new byte[Size];
            string parent = dir.File("parent." + parentExt), child = dir.File("child.qcow2");
            OpsKit.CreateBase(parent, Size);
            OpsKit.RandomWrites(parent, rng, 6, model);
            OpsKit.CreateChild(child, parent);
            OpsKit.RandomWrites(child, rng, 10, model);
            await Dse("merge", child);
            Assert.False(File.Exists(child));
            OpsKit.AssertContent(model, parent, $"{parentExt} parent after merge");
            AssertQemuCheckClean(parent);
            AssertQemuReadsModel(parent, model);
        }
    }

    [RequiresToolFact("qemu-img")]
    public async Task Pull_and_rebase_over_mixed_chains()
    {
        using var dir = new TempDirectory("qcow2-verbs");
        var rng = new Random(3);
        var model = new byte[Size];
        string b = dir.File("base.vhdx"), mid = dir.File("mid.qcow2"), top = dir.File("top.qcow2");
        OpsKit.CreateBase(b, Size);
        OpsKit.RandomWrites(b, rng, 5, model);
        OpsKit.CreateChild(mid, b);
        OpsKit.RandomWrites(mid, rng, 5, model);
        OpsKit.CreateChild(top, mid);
        OpsKit.RandomWrites(top, rng, 5, model);

        await Dse("merge", "--pull", top);
        OpsKit.AssertContent(model, top, "after pull");
        using (var info = JsonDocument.Parse(QemuImg("info", "--output=json", top)))
        {
            Assert.Equal("base.vhdx", info.RootElement.GetProperty("backing-filename").GetString());
            Assert.Equal("vhdx", info.RootElement.GetProperty("backing-filename-format").GetString());
        }
        AssertQemuCheckClean(top);

        // Safe rebase onto another base: the image keeps its content, qemu agrees.
        string other = dir.File("other.qcow2");
        OpsKit.CreateBase(other, Size);
        OpsKit.RandomWrites(other, rng, 3, new byte[Size]);
        await Dse("rebase", top, "--parent", other);
        OpsKit.AssertContent(model, top, "after rebase");
        AssertQemuCheckClean(top);
        AssertQemuReadsModel(top, model);

        // A moved parent: qcow2 records no identity, so only --unsafe relinks it.
        File.Move(other, dir.File("moved.qcow2"));
        var refused = await CliRunner.RunAsync("rebase", top, "--parent", dir.File("moved.qcow2"));
        Assert.Equal(10, refused.ExitCode);
        await Dse("rebase", top, "--parent", dir.File("moved.qcow2"), "--unsafe");
        OpsKit.AssertContent(model, top, "after relinking the moved parent");
    }

    [RequiresToolFact("qemu-img")]
    public async Task Snapshots_compact_map_and_check_on_a_qcow2_disk()
    {
        using var dir = new TempDirectory("qcow2-verbs");
        var rng = new Random(4);
        string disk = dir.File("disk.qcow2");
        var model = new byte[Size];
        OpsKit.CreateBase(disk, Size);
        OpsKit.RandomWrites(disk, rng, 6, model);
        // A child qemu-img made names the disk by path: taking a snapshot relinks it to the snapshot layer, so it keeps
        // its content. (A linked clone dse made would have sealed the disk, and snapshot create refuses a golden disk.)
        QemuImg("create", "-f", "qcow2", "-F", "qcow2", "-b", "disk.qcow2", dir.File("linked.qcow2"));
        await Dse("snapshot", "create", disk, "--name", "a");
        var atA = (byte[])model.Clone();
        OpsKit.AssertContent(atA, dir.File("linked.qcow2"), "the linked clone after the snapshot");
        using (var info = JsonDocument.Parse(QemuImg("info", "--output=json", dir.File("linked.qcow2"))))
            Assert.StartsWith("disk.snap-", info.RootElement.GetProperty("backing-filename").GetString());
        OpsKit.RandomWrites(disk, rng, 6, model);
        await Dse("snapshot", "create", disk, "--name", "b");
        OpsKit.RandomWrites(disk, rng, 6, model);
        foreach (var f in Directory.GetFiles(dir.Path, "*.qcow2")) AssertQemuCheckClean(f);
        AssertQemuReadsModel(disk, model);

        await Dse("snapshot", "revert", disk, "--name", "a");
        OpsKit.AssertContent(atA, disk, "reverted to a");
        await Dse("snapshot", "delete", disk, "--name", "b");
        await Dse("rollback", disk);
        OpsKit.AssertContent(atA, disk, "rolled back to a");
        foreach (var f in Directory.GetFiles(dir.Path, "*.qcow2")) AssertQemuCheckClean(f);

        // Compact gives back zeroed clusters and keeps the content.
        using (var chain = DiskImage.Open(disk, OpenOptions.ReadWrite))
        {
            chain.Write(0, RandomData.Bytes(4 * MiB, 5));
            chain.WriteZeroes(0, 4 * MiB);
        }
        var compact = await Dse("compact", disk);
        OpsKit.AssertContent(atA, disk, "after compact");
        AssertQemuCheckClean(disk);

        var map = await Dse("map", disk);
        Assert.Contains("disk.snap-", map.StdOut);
        var check = await Dse("check", disk);
        Assert.Equal(0, check.ExitCode);
    }

    [RequiresToolFact("qemu-img")]
    public async Task Check_tells_a_leak_from_a_corruption_as_qemu_does()
    {
        using var dir = new TempDirectory("qcow2-verbs");
        string q = dir.File("c.qcow2");
        using (var l = DiskImage.Create(q, new DiskSnapshotEngine.Formats.ImageCreateOptions(Size)))
        using (var c = new DiskSnapshotEngine.Block.DiskChain(new[] { l }))
            c.Write(0, RandomData.Bytes(256 * KiB, 6));
        long l2Offset, dataCluster;
        using (var l = DiskImage.OpenLayer(q, false))
        {
            dataCluster = l.GetStatus(0, 1).FileOffset;
            l2Offset = ReadBigEndian(q, long.Parse(l.Details.First(kv => kv.Key == "l1_table_offset").Value)) & 0x00FFFFFFFFFFFE00L;
        }
        // A leak: the L2 entry of the first cluster dropped, its refcount still 1.
        string leak = dir.File("leak.qcow2");
        File.Copy(q, leak);
        WriteBigEndian(leak, l2Offset, 0);
        var leakCheck = await CliRunner.RunAsync("check", leak);
        Assert.True(leakCheck.ExitCode == 0, leakCheck.ToString());
        Assert.Contains("leak", leakCheck.StdOut);
        Assert.Equal(3, QemuCheck(leak).Code);
        // A corruption: the same entry kept, a second entry pointing at the same cluster.
        string corrupt = dir.File("corrupt.qcow2");
        File.Copy(q, corrupt);
        WriteBigEndian(corrupt, l2Offset + 8 * 10, dataCluster | (1L << 63));
        var corruptCheck = await CliRunner.RunAsync("check", corrupt);
        Assert.Equal(1, corruptCheck.ExitCode);
        Assert.Equal(2, QemuCheck(corrupt).Code);
    }

    [RequiresToolFact("qemu-img")]
    public async Task Vhdx_and_vdi_children_of_a_qcow2_are_refused_clearly_and_larger_overlays_open()
    {
        using var dir = new TempDirectory("qcow2-verbs");
        string q = dir.File("base.qcow2");
        await Dse("create", q, "--size", "8M");
        string before = ContentHash.OfFile(q);
        var vhdx = await CliRunner.RunAsync("create", dir.File("child.vhdx"), "--parent", q);
        Assert.Equal(5, vhdx.ExitCode);
        Assert.Contains("must be a VHDX (MS-VHDX 2.6.2.6), not qcow2", vhdx.StdErr); // the format as users type it, not the enum's "Qcow2"
        var vdi = await CliRunner.RunAsync("create", dir.File("child.vdi"), "--parent", q);
        Assert.Equal(5, vdi.ExitCode);
        Assert.Contains("no identity a VDI can link to (qcow2 images carry none)", vdi.StdErr);
        var linked = await CliRunner.RunAsync("clone", "--linked", q, dir.File("linked.vhdx"));
        Assert.Equal(5, linked.ExitCode);
        Assert.False(File.Exists(dir.File("child.vhdx")) || File.Exists(dir.File("child.vdi")) || File.Exists(dir.File("linked.vhdx")));
        // A refused child changes nothing: the qcow2 parent is not sealed for a clone that was never made.
        Assert.Equal(before, ContentHash.OfFile(q));
        // qemu lets an overlay be larger than its backing file: the chain has the overlay's size.
        string big = dir.File("big.qcow2");
        QemuImg("create", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", big, "16M");
        var info = await CliRunner.RunAsync("info", big, "--chain", "--json");
        Assert.True(info.ExitCode == 0, info.ToString());
        Assert.Contains("16777216", info.StdOut);
    }

    private static long ReadBigEndian(string path, long at) => (long)ReadU64(path, at);

    private static void WriteBigEndian(string path, long at, long value)
    {
        using var f = File.OpenWrite(path);
        var b = new byte[8];
        System.Buffers.Binary.BinaryPrimitives.WriteInt64BigEndian(b, value);
        f.Position = at;
        f.Write(b);
    }

}
