using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.Formats.Qcow2;
using DiskSnapshotEngine.Tests.Infrastructure;
using DiskSnapshotEngine.Tests.Operations;

namespace DiskSnapshotEngine.Tests.Formats.Qcow2;

/// <summary>qcow2 growth in place (size and l1_size in one header write), checked against a model and qemu-img.</summary>
public class Qcow2ResizeTests
{
    /// <summary>
    /// An unaligned size: the tail of the old last cluster (garbage another writer left past the old end) reads zeros
    /// after growing, the L1 table grows inside its cluster, and qemu-img agrees on size, soundness and content.
    /// </summary>
    [RequiresToolFact("qemu-img")]
    public void Growth_in_place_zeroes_the_old_tail_and_qemu_reads_the_new_size()
    {
        using var dir = new TempDirectory("qcow2-grow");
        string path = dir.File("disk.qcow2");
        long size = (3L << 20) + 4096; // the last 64 KiB cluster is partly outside the disk
        var model = new byte[size];
        using (DiskImage.Create(path, new ImageCreateOptions(size))) { }
        using (var chain = DiskImage.Open(path, OpenOptions.ReadWrite))
        {
            var data = new byte[8192];
            new Random(3).NextBytes(data);
            chain.Write(size - 8192, data);
            data.CopyTo(model, size - 8192);
        }
        long host;
        using (var l = DiskImage.OpenLayer(path, false)) host = l.GetStatus(size - 4096, 4096).FileOffset;
        using (var f = File.OpenWrite(path)) { f.Position = host + 4096; f.Write(Enumerable.Repeat((byte)0xEE, 4096).ToArray()); }

        long newSize = 1L << 30; // 1 GiB: 2 L1 entries instead of 1, same L1 cluster
        using (var l = (Qcow2Layer)DiskImage.OpenLayer(path, writable: true)) Assert.True(l.TryResizeInPlace(newSize));

        var expected = new byte[4L << 20];
        model.CopyTo(expected, 0);
        using (var chain = DiskImage.Open(path))
        {
            Assert.Equal(newSize, chain.VirtualSize);
            var head = new byte[expected.Length];
            chain.Read(0, head);
            Assert.Equal(-1, OpsKit.FirstDifference(expected, head));
            Assert.False(chain.Check().HasErrors, string.Join("; ", chain.Check().Problems));
        }
        Assert.Contains("\"virtual-size\": 1073741824", ExternalTool.RunChecked("qemu-img", "info", "--output=json", path));
        ExternalTool.RunChecked("qemu-img", "check", path);
        var raw = dir.File("expected.raw");
        using (var f = File.Create(raw)) { f.Write(expected); f.SetLength(newSize); }
        ExternalTool.RunChecked("qemu-img", "compare", "-F", "raw", path, raw);
    }

    /// <summary>Past the room of the L1 table's clusters (512-byte clusters: one L1 cluster maps 2 MiB), nothing changes and the caller rewrites.</summary>
    [RequiresToolFact("qemu-img")]
    public void Growth_past_the_l1_clusters_room_is_declined_unchanged()
    {
        using var dir = new TempDirectory("qcow2-grow-big");
        string path = dir.File("disk.qcow2");
        ExternalTool.RunChecked("qemu-img", "create", "-f", "qcow2", "-o", "cluster_size=512", path, "1M");
        var before = File.ReadAllBytes(path);
        using (var l = (Qcow2Layer)DiskImage.OpenLayer(path, writable: true))
        {
            Assert.True(l.TryResizeInPlace(2L << 20));
        }
        var grown = File.ReadAllBytes(path);
        Assert.NotEqual(before, grown);
        using (var l = (Qcow2Layer)DiskImage.OpenLayer(path, writable: true)) Assert.False(l.TryResizeInPlace(8L << 20));
        Assert.Equal(grown, File.ReadAllBytes(path));
        ExternalTool.RunChecked("qemu-img", "check", path);
    }
}
