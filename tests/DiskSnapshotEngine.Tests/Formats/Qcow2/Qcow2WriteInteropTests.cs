using System.Text.Json;
using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.Tests.Infrastructure;
using static DiskSnapshotEngine.Tests.Formats.Qcow2.Qcow2TestKit;

namespace DiskSnapshotEngine.Tests.Formats.Qcow2;

/// <summary>
/// Images we make or write are images qemu accepts: qemu-img check finds nothing (no leak, no corruption), and
/// qemu reads exactly the bytes we wrote (compared with a flat model of the writes).
/// </summary>
public sealed class Qcow2WriteInteropTests
{
    private const long Size = 20L * MiB + 3 * 512;

    /// <summary>Random writes (partial, cluster-crossing, zero) applied to both the chain and a flat model.</summary>
    private static void RandomWrites(DiskChain chain, byte[] model, int seed, int count = 40)
    {
        var rng = new Random(seed);
        for (int i = 0; i < count; i++)
        {
            long at = rng.NextInt64(0, model.Length - 1);
            int n = (int)Math.Min(model.Length - at, rng.Next(4) switch { 0 => rng.Next(1, 600), 1 => rng.Next(1, 200_000), 2 => 64 * KiB, _ => rng.Next(1, 3 * MiB) });
            if (i % 7 == 3)
            {
                chain.WriteZeroes(at, n);
                Array.Clear(model, (int)at, n);
            }
            else
            {
                var data = RandomData.Bytes(n, seed * 100 + i);
                if (i % 5 == 0) Array.Clear(data);
                chain.Write(at, data);
                data.CopyTo(model, at);
            }
        }
    }

    [RequiresToolFact("qemu-img", "qemu-io")]
    public void Our_base_image_passes_qemu_check_and_reads_the_same_in_qemu()
    {
        using var dir = new TempDirectory("qcow2");
        string q = dir.File("base.qcow2");
        var model = new byte[Size];
        using (var layer = DiskImage.Create(q, new ImageCreateOptions(Size)))
        using (var chain = new DiskChain(new[] { layer }))
            RandomWrites(chain, model, 1);
        AssertQemuCheckClean(q);
        AssertQemuReadsModel(q, model);
        QemuIo(q, $"read -P {model[Size - 1]} {Size - 1} 1");
        using var reopened = DiskImage.Open(q);
        AssertClean(reopened.Check());
        var info = JsonDocument.Parse(QemuImg("info", "--output=json", q)).RootElement;
        Assert.Equal(Size, info.GetProperty("virtual-size").GetInt64());
        Assert.Equal(65536, info.GetProperty("cluster-size").GetInt32());
        Assert.Equal("1.1", info.GetProperty("format-specific").GetProperty("data").GetProperty("compat").GetString());
    }

    [RequiresToolFact("qemu-img", "qemu-io")]
    public void An_overlay_over_vhdx_names_its_backing_format_and_qemu_reads_the_chain()
    {
        using var dir = new TempDirectory("qcow2");
        string golden = dir.File("golden.vhdx");
        var model = new byte[Size];
        using (var g = DiskImage.Create(golden, new ImageCreateOptions(Size, BlockSize: 1 << 20)))
        using (var c = new DiskChain(new[] { g }))
            RandomWrites(c, model, 2, 10);
        Directory.CreateDirectory(dir.File("vms"));
        string overlay = dir.File("vms/vm1.qcow2");
        using (var child = DiskImage.CreateDifferencing(overlay, golden)) { }
        using (var chain = DiskImage.Open(overlay, OpenOptions.ReadWrite))
            RandomWrites(chain, model, 3);
        AssertQemuCheckClean(overlay);
        var info = JsonDocument.Parse(QemuImg("info", "--output=json", overlay)).RootElement;
        Assert.Equal("vhdx", info.GetProperty("backing-filename-format").GetString());
        Assert.Equal("../golden.vhdx", info.GetProperty("backing-filename").GetString());
        AssertQemuReadsModel(overlay, model);
        QemuIo(overlay, "read 0 64k");
    }

    [RequiresToolFact("qemu-img", "qemu-io")]
    public void Writing_into_qemu_made_images_keeps_them_valid_for_qemu()
    {
        using var dir = new TempDirectory("qcow2");
        string raw = MakeRaw(dir.File("src.raw"), Size, 9);
        var variants = new (string Name, string[] Make)[]
        {
            ("default", new[] { "create", "-f", "qcow2" }),
            ("compressed", new[] { "convert", "-c", "-O", "qcow2", raw }),
            ("zstd", new[] { "convert", "-c", "-O", "qcow2", "-o", "compression_type=zstd", raw }),
            ("extended", new[] { "convert", "-O", "qcow2", "-o", "extended_l2=on", raw }),
            ("refcount1", new[] { "convert", "-O", "qcow2", "-o", "refcount_bits=1", raw }),
            ("refcount2", new[] { "create", "-f", "qcow2", "-o", "refcount_bits=2" }),
            ("refcount4", new[] { "convert", "-O", "qcow2", "-o", "refcount_bits=4", raw }),
            ("refcount8", new[] { "create", "-f", "qcow2", "-o", "refcount_bits=8,cluster_size=4k" }),
            ("refcount32", new[] { "convert", "-O", "qcow2", "-o", "refcount_bits=32", raw }),
            ("refcount64-small", new[] { "create", "-f", "qcow2", "-o", "refcount_bits=64,cluster_size=512" }),
            ("v2", new[] { "convert", "-O", "qcow2", "-o", "compat=0.10", raw }),
        };
        foreach (var (name, make) in variants)
        {
            string q = dir.File(name + ".qcow2");
            var args = make.Append(q).ToList();
            if (make[0] == "create") args.Add(Size.ToString());
            QemuImg(args.ToArray());
            var model = make[0] == "create" ? new byte[Size] : File.ReadAllBytes(raw);
            using (var chain = DiskImage.Open(q, OpenOptions.ReadWrite)) RandomWrites(chain, model, name.Length);
            var (code, output) = QemuCheck(q);
            Assert.True(code == 0, $"{name}: qemu-img check exited {code}: {output}");
            AssertQemuReadsModel(q, model);
            using var reopened = DiskImage.Open(q);
            AssertClean(reopened.Check());
        }
    }

    [RequiresToolFact("qemu-img")]
    public void The_refcount_table_grows_when_the_file_outgrows_it()
    {
        using var dir = new TempDirectory("qcow2");
        string q = dir.File("grow.qcow2");
        // 512-byte clusters and 64-bit refcounts: one table cluster covers only 64 blocks of 64 clusters (2 MiB of file).
        QemuImg("create", "-f", "qcow2", "-o", "cluster_size=512,refcount_bits=64", q, "8M");
        long tableBefore;
        using (var l = DiskImage.OpenLayer(q, false)) tableBefore = long.Parse(l.Details.First(kv => kv.Key == "refcount_table_offset").Value);
        var model = new byte[8 * MiB];
        var data = RandomData.Bytes(6 * MiB, 4);
        using (var chain = DiskImage.Open(q, OpenOptions.ReadWrite))
        {
            chain.Write(MiB, data);
            data.CopyTo(model, MiB);
        }
        using (var l = DiskImage.OpenLayer(q, false))
            Assert.NotEqual(tableBefore, long.Parse(l.Details.First(kv => kv.Key == "refcount_table_offset").Value));
        AssertQemuCheckClean(q);
        AssertQemuReadsModel(q, model);
    }
}
