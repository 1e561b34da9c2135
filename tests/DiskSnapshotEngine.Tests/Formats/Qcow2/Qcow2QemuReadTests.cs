using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Tests.Infrastructure;
using static DiskSnapshotEngine.Tests.Formats.Qcow2.Qcow2TestKit;

namespace DiskSnapshotEngine.Tests.Formats.Qcow2;

/// <summary>
/// qcow2 images made by qemu-img and qemu-io, in every variant users meet, read byte for byte as qemu reads them,
/// and check clean.
/// </summary>
public sealed class Qcow2QemuReadTests
{
    private const long Size = 24L * MiB;

    // Writes through qemu-io that exercise partial clusters, cluster-crossing runs, zero clusters and discards.
    private static readonly string[] s_writes =
    {
        "write -P 0x11 0 4k", "write -P 0x22 65000 70000", "write -P 0x33 3M 1M", "write -z 3M 128k", "write -z 5M 64k",
        "write -P 0x44 10M 65536", "discard 10M 64k", "write -P 0x55 23M 1M", "write -z 640k 32k",
    };

    [RequiresToolFact("qemu-img", "qemu-io")]
    public void Default_images_with_zero_clusters_read_like_qemu()
    {
        using var dir = new TempDirectory("qcow2");
        string q = dir.File("default.qcow2");
        QemuImg("create", "-f", "qcow2", q, Size.ToString());
        QemuIo(q, s_writes);
        AssertReadsLikeQemu(q);
        using var chain = DiskImage.Open(q);
        AssertClean(chain.Check());
        // write -z of whole clusters in a version 3 image is a zero cluster, reported as such.
        Assert.Contains(chain.GetExtents(0, Size), e => e.Kind == ExtentKind.Zero && e.Offset <= 3 * MiB && e.End >= 3 * MiB + 128 * KiB);
    }

    [RequiresToolFact("qemu-img")]
    public void Compressed_images_zlib_and_zstd_read_like_qemu()
    {
        using var dir = new TempDirectory("qcow2");
        string raw = MakeRaw(dir.File("src.raw"), Size, 5);
        foreach (var (name, options) in new[] { ("zlib", "compression_type=zlib"), ("zstd", "compression_type=zstd"), ("small", "cluster_size=4096"), ("big", "cluster_size=2M") })
        {
            string q = dir.File(name + ".qcow2");
            QemuImg("convert", "-c", "-O", "qcow2", "-o", options, raw, q);
            AssertReadsLikeQemu(q, name);
            using var chain = DiskImage.Open(q);
            Assert.Contains(chain.GetExtents(0, Size), e => e.IsEncoded);
            AssertClean(chain.Check());
            if (name == "zstd") Assert.Contains(chain.Top.Details, kv => kv.Key == "compression_type" && kv.Value == "zstd");
        }
    }

    [RequiresToolFact("qemu-img")]
    public async Task Export_and_map_of_a_compressed_image_decode_through_the_layer()
    {
        using var dir = new TempDirectory("qcow2");
        string raw = MakeRaw(dir.File("src.raw"), Size, 8);
        string q = dir.File("c.qcow2");
        QemuImg("convert", "-c", "-O", "qcow2", "-o", "compression_type=zstd", raw, q);
        var export = await Cli.CliRunner.RunAsync("export", q, dir.File("out.raw"));
        Assert.True(export.ExitCode == 0, export.ToString());
        Assert.True(File.ReadAllBytes(raw).AsSpan().SequenceEqual(File.ReadAllBytes(dir.File("out.raw"))), "the export differs from the source");
        var map = await Cli.CliRunner.RunAsync("map", q);
        Assert.Contains("(compressed)", map.StdOut);
    }

    [RequiresToolFact("qemu-img", "qemu-io")]
    public void Extended_l2_subclusters_read_like_qemu()
    {
        using var dir = new TempDirectory("qcow2");
        string q = dir.File("ext.qcow2");
        QemuImg("create", "-f", "qcow2", "-o", "extended_l2=on,cluster_size=64k", q, Size.ToString());
        QemuIo(q, s_writes.Concat(new[] { "write -P 0x66 2k 2k", "write -z 6k 4k", "write -P 0x77 130k 1k" }).ToArray());
        AssertReadsLikeQemu(q);
        using var chain = DiskImage.Open(q);
        AssertClean(chain.Check());
        // A subcluster (2 KiB here) is the unit: the 2 KiB written at 2k is data, the next ones are not.
        var first = chain.Top.GetStatus(2048, 64 * KiB - 2048);
        Assert.Equal(ExtentKind.Data, first.Kind);
    }

    [RequiresToolFact("qemu-img", "qemu-io")]
    public void Every_refcount_width_and_version_2_read_like_qemu() // refcount_order 0 to 6
    {
        using var dir = new TempDirectory("qcow2");
        foreach (var options in new[] { "refcount_bits=1", "refcount_bits=2", "refcount_bits=4", "refcount_bits=16", "refcount_bits=32", "refcount_bits=64", "compat=0.10", "cluster_size=512,refcount_bits=8" })
        {
            string q = dir.File(options.Replace('=', '-').Replace(',', '-') + ".qcow2");
            QemuImg("create", "-f", "qcow2", "-o", options, q, Size.ToString());
            QemuIo(q, s_writes);
            AssertReadsLikeQemu(q, options);
            using var chain = DiskImage.Open(q);
            AssertClean(chain.Check());
        }
    }

    [RequiresToolFact("qemu-img", "qemu-io")]
    public void Three_layer_chains_over_every_backing_format_read_like_qemu()
    {
        using var dir = new TempDirectory("qcow2");
        foreach (var baseFormat in new[] { "qcow2", "raw", "vhdx", "vdi" })
        {
            string b = dir.File($"base-{baseFormat}.{(baseFormat == "raw" ? "img" : baseFormat)}");
            QemuImg("create", "-f", baseFormat, b, Size.ToString());
            QemuIo(b, "write -P 0xa1 0 8M", "write -P 0xa2 20M 4M");
            string mid = dir.File($"mid-{baseFormat}.qcow2"), top = dir.File($"top-{baseFormat}.qcow2");
            QemuImg("create", "-f", "qcow2", "-b", Path.GetFileName(b), "-F", baseFormat, mid);
            QemuIo(mid, "write -P 0xb1 1M 100k", "write -z 2M 1M", "write -P 0xb2 21M 64k");
            QemuImg("create", "-f", "qcow2", "-b", mid, "-F", "qcow2", top);
            QemuIo(top, "write -P 0xc1 1M 4k", "write -z 20M 64k", "write -P 0xc2 23M 70000");
            AssertReadsLikeQemu(top, baseFormat);
            using var chain = DiskImage.Open(top);
            Assert.Equal(3, chain.Layers.Count);
            Assert.Equal(baseFormat, chain.Layers[2].Format.ToString().ToLowerInvariant());
            Assert.Null(chain.Top.ParentLink!.ParentVersion);
            foreach (var layer in chain.Layers.Where(l => l.Format == ImageFormat.Qcow2)) AssertClean(layer.Check());
        }
    }

    [RequiresToolFact("qemu-img", "qemu-io")]
    public void Internal_snapshots_are_listed_and_the_image_opens_read_only()
    {
        using var dir = new TempDirectory("qcow2");
        string q = dir.File("snap.qcow2");
        QemuImg("create", "-f", "qcow2", q, Size.ToString());
        QemuIo(q, "write -P 0x10 0 1M");
        QemuImg("snapshot", "-c", "before-update", q);
        QemuIo(q, "write -P 0x20 512k 1M");
        AssertReadsLikeQemu(q);
        using (var chain = DiskImage.Open(q))
        {
            Assert.Contains(chain.Top.Details, kv => kv.Value.Contains("'before-update'"));
            AssertClean(chain.Check());
        }
        var e = Assert.Throws<DiskImageException>(() => DiskImage.Open(q, OpenOptions.ReadWrite));
        Assert.Equal(ErrorKind.Unsupported, e.Kind);
        Assert.Contains("internal snapshot", e.Message);
    }

    /// <summary>
    /// lazy_refcounts: qemu sets the dirty bit while it defers refcount updates; killed (qemu-io abort) it leaves the bit
    /// set. Such an image reads like qemu reads it and refuses writes; a clean one is written like any other.
    /// </summary>
    [RequiresToolFact("qemu-img", "qemu-io")]
    public void Lazy_refcounts_a_dirty_image_reads_like_qemu_and_opens_read_only_a_clean_one_takes_writes()
    {
        using var dir = new TempDirectory("qcow2");
        string clean = dir.File("lazy.qcow2"), dirty = dir.File("dirty.qcow2");
        QemuImg("create", "-f", "qcow2", "-o", "lazy_refcounts=on", clean, Size.ToString());
        QemuIo(clean, "write -P 0x61 0 1M");
        File.Copy(clean, dirty);
        ExternalTool.Run("qemu-io", "-c", "write -P 0x62 2M 1M", "-c", "abort", dirty);
        var header = new byte[80];
        using (var f = File.OpenRead(dirty)) f.ReadExactly(header);
        Assert.Equal(1UL, System.Buffers.Binary.BinaryPrimitives.ReadUInt64BigEndian(header.AsSpan(72)) & 1); // qemu left it dirty

        AssertReadsLikeQemu(dirty);
        var e = Assert.Throws<DiskImageException>(() => DiskImage.Open(dirty, OpenOptions.ReadWrite));
        Assert.Equal(ErrorKind.Unsupported, e.Kind);
        Assert.Contains("dirty bit", e.Message);

        var model = new byte[Size];
        model.AsSpan(0, MiB).Fill(0x61);
        var data = RandomData.Bytes(3 * MiB, 12);
        using (var chain = DiskImage.Open(clean, OpenOptions.ReadWrite)) chain.Write(5000, data);
        data.CopyTo(model, 5000);
        AssertQemuCheckClean(clean);
        AssertQemuReadsModel(clean, model);
    }
}
