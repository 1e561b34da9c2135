using System.Diagnostics;
using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.IO;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Formats.Vhdx;

public class VhdxLayerTests
{
    [Fact]
    public void Creating_a_child_of_a_64GiB_parent_reads_and_writes_as_much_as_for_a_64MiB_parent()
    {
        using var dir = new TempDirectory("vhdx");
        var costs = new List<(long Read, long ChildLength)>();
        foreach (long size in new[] { 64L << 20, 64L << 30 })
        {
            var parent = dir.File($"p{size}.vhdx");
            DiskImage.Create(parent, new ImageCreateOptions(size)).Dispose();
            long read = 0;
            var child = dir.File($"c{size}.vhdx");
            DiskImage.CreateDifferencing(child, parent, fileOpener: (p, w) => new ReadCountingFile(ImageFile.Open(p, w), n => read += n)).Dispose();
            var st = new FileInfo(child);
            costs.Add((read, st.Length));
            // Opening the whole chain reads headers and metadata only.
            read = 0;
            using (DiskImage.Open(child, new OpenOptions { FileOpener = (p, w) => new ReadCountingFile(ImageFile.Open(p, w), n => read += n) })) { }
            Assert.True(read < 512 << 10, $"opening a chain of {size} bytes read {read} bytes");
        }
        Assert.Equal(costs[0].Read, costs[1].Read);
        // The child's BAT is a sparse hole; its apparent length grows a little with the size, nothing is written there.
        Assert.True(costs[1].ChildLength - costs[0].ChildLength <= 1 << 20);
    }

    [Fact]
    public void GetStatus_coalesces_contiguous_blocks_so_a_128GiB_image_maps_in_a_few_extents()
    {
        using var dir = new TempDirectory("vhdx");
        var path = dir.File("big.vhdx");
        using (var layer = DiskImage.Create(path, new ImageCreateOptions(128L << 30, BlockSize: 2 << 20)))
        {
            var data = RandomData.Bytes(8 << 20, 1);
            layer.Write(1L << 30, data);
        }
        using var chain = DiskImage.Open(path);
        var sw = Stopwatch.StartNew();
        var extents = chain.GetExtents(0, chain.VirtualSize).ToList();
        sw.Stop();
        Assert.Equal(3, extents.Count);
        Assert.Equal(new ChainExtent(1L << 30, 8 << 20, ExtentKind.Data, 0, extents[1].FileOffset), extents[1]);
        Assert.True(sw.ElapsedMilliseconds < 5000, $"mapping took {sw.ElapsedMilliseconds} ms");
    }

    [Fact]
    public void GetWriteSpan_is_the_range_itself_except_for_sectors_a_child_does_not_hold()
    {
        using var dir = new TempDirectory("vhdx");
        var basePath = dir.File("b.vhdx");
        using (var b = DiskImage.Create(basePath, new ImageCreateOptions(8L << 20, BlockSize: 1 << 20)))
            Assert.Equal((100L, 10L), b.GetWriteSpan(100, 10));
        using var child = DiskImage.CreateDifferencing(dir.File("c.vhdx"), basePath);
        Assert.Equal((0L, 512L), child.GetWriteSpan(100, 10));
        Assert.Equal((512L, 1024L), child.GetWriteSpan(700, 600));
        child.Write(0, new byte[512]);  // sector 0 now present (the block is PARTIALLY_PRESENT)
        Assert.Equal((100L, 10L), child.GetWriteSpan(100, 10));
        Assert.Equal((100L, 924L), child.GetWriteSpan(100, 900));
        Assert.Equal(ExtentKind.Data, child.GetStatus(0, 4096).Kind);
        Assert.Equal(512, child.GetStatus(0, 4096).Length);
        Assert.Equal(ExtentKind.NotPresent, child.GetStatus(512, 4096).Kind);
    }

    [Fact]
    public void Zeroing_an_allocated_block_of_a_dynamic_image_leaves_a_leak_that_check_reports()
    {
        using var dir = new TempDirectory("vhdx");
        var path = dir.File("l.vhdx");
        using (var layer = DiskImage.Create(path, new ImageCreateOptions(8L << 20, BlockSize: 1 << 20)))
        {
            layer.Write(1 << 20, Enumerable.Repeat((byte)3, 1 << 20).ToArray());
            Assert.True(layer.Check().IsClean, string.Join("\n", layer.Check().Problems));
            layer.WriteZeroes(1 << 20, 1 << 20);
            Assert.Equal(ExtentKind.Zero, layer.GetStatus(1 << 20, 1 << 20).Kind);
        }
        using var reopened = DiskImage.OpenLayer(path, false);
        var report = reopened.Check();
        Assert.False(report.HasErrors);
        var leak = Assert.Single(report.Problems);
        Assert.Equal(CheckSeverity.Leak, leak.Severity);
        Assert.Contains("1048576 bytes", leak.Message);
    }

    [Fact]
    public void Details_name_the_guids_block_size_and_creator()
    {
        using var dir = new TempDirectory("vhdx");
        using var layer = DiskImage.Create(dir.File("d.vhdx"), new ImageCreateOptions(8L << 20, LogicalSectorSize: 4096));
        var d = layer.Details.ToDictionary(k => k.Key, v => v.Value);
        Assert.Equal((32 << 20).ToString(), d["block size"]);
        Assert.Equal("4096", d["logical sector size"]);
        Assert.Equal("DiskSnapshotEngine", d["creator"]);
        Assert.Equal(layer.Identity.Id, Guid.Parse(d["virtual disk id"]));
        Assert.Equal(layer.Identity.Version, Guid.Parse(d["data write guid"]));
        Assert.True(Guid.TryParse(d["file write guid"], out _));
        Assert.Equal(Guid.Empty, Guid.Parse(d["log guid"]));
    }

    [RequiresToolFact("qemu-img", "qemu-io")]
    public void Qemu_io_writes_into_our_image_and_we_read_them_and_qemu_reads_ours()
    {
        using var dir = new TempDirectory("vhdx");
        var path = dir.File("ours.vhdx");
        using (var layer = DiskImage.Create(path, new ImageCreateOptions(16L << 20, BlockSize: 1 << 20, LogicalSectorSize: 512)))
            layer.Write(8L << 20, Enumerable.Repeat((byte)0xcd, 1 << 20).ToArray());
        ExternalTool.RunChecked("qemu-io", "-f", "vhdx", "-c", "write -P 0xab 1M 3M", path);
        ExternalTool.RunChecked("qemu-io", "-f", "vhdx", "-c", "read -P 0xcd 8M 1M", path);
        ExternalTool.RunChecked("qemu-img", "check", "-f", "vhdx", path);
        using var chain = DiskImage.Open(path);
        var buf = new byte[16 << 20];
        chain.Read(0, buf);
        for (int i = 0; i < buf.Length; i++)
        {
            byte want = i >= (1 << 20) && i < (4 << 20) ? (byte)0xab : i >= (8 << 20) && i < (9 << 20) ? (byte)0xcd : (byte)0;
            if (buf[i] != want) Assert.Fail($"byte {i} is {buf[i]:x2}, expected {want:x2}");
        }
    }
}
