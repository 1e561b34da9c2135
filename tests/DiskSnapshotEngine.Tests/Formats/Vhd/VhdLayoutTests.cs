using System.Buffers.Binary;
using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.Formats.Vhd;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Formats.Vhd;

/// <summary>The bytes we write, field by field, as the spec and the readers we tested against expect them.</summary>
public sealed class VhdLayoutTests : IDisposable
{
    private const int MiB = VhdTestKit.MiB;
    private readonly TempDirectory _dir = new("vhd-layout");

    public void Dispose() => _dir.Dispose();

    private static uint U32(byte[] b, int at) => BinaryPrimitives.ReadUInt32BigEndian(b.AsSpan(at));
    private static ulong U64(byte[] b, int at) => BinaryPrimitives.ReadUInt64BigEndian(b.AsSpan(at));

    private static void AssertChecksum(byte[] structure, int checksumAt)
    {
        uint sum = 0;
        for (int i = 0; i < structure.Length; i++)
            if (i < checksumAt || i >= checksumAt + 4) sum += structure[i];
        Assert.Equal(~sum, U32(structure, checksumAt));
    }

    [Fact]
    public void A_fixed_disk_is_the_data_then_one_512_byte_footer_and_never_grows()
    {
        string path = _dir.File("f.vhd");
        const long size = 5L * MiB + 1024;
        using (var layer = VhdTestKit.Create(path, size, ImageType.Fixed))
        using (var chain = new DiskChain(new[] { layer }))
        {
            Assert.Equal(size + 512, new FileInfo(path).Length);
            chain.Write(1000, RandomData.Bytes(2 * MiB, 1));
            chain.WriteZeroes(3L * MiB, MiB);
        }
        Assert.Equal(size + 512, new FileInfo(path).Length);
        var footer = VhdTestKit.ReadAt(path, size, 512);
        Assert.Equal("conectix"u8.ToArray(), footer[..8]);
        Assert.Equal(2u, U32(footer, 8));                      // Features: the reserved bit
        Assert.Equal(0x00010000u, U32(footer, 12));
        Assert.Equal(ulong.MaxValue, U64(footer, 16));         // no Data Offset
        Assert.Equal("dse ", System.Text.Encoding.ASCII.GetString(footer, 28, 4));
        Assert.Equal((ulong)size, U64(footer, 40));
        Assert.Equal((ulong)size, U64(footer, 48));
        Assert.Equal(2u, U32(footer, 60));                     // fixed
        AssertChecksum(footer, 64);
        Assert.All(footer[85..], b => Assert.Equal(0, b));      // reserved
        // The data is the disk, byte for byte.
        Assert.Equal(RandomData.Bytes(2 * MiB, 1), VhdTestKit.ReadAt(path, 1000, 2 * MiB));
    }

    [Fact]
    public void A_dynamic_disk_has_a_footer_copy_a_header_an_exact_BAT_and_4KiB_aligned_block_data()
    {
        string path = _dir.File("d.vhd");
        const long size = 9L * MiB + 512;
        using (var layer = VhdTestKit.Create(path, size))
        using (var chain = new DiskChain(new[] { layer }))
        {
            chain.Write(3L * MiB + 5, RandomData.Bytes(100, 2));  // one block, copy-on-write around it
            chain.Write(8L * MiB, RandomData.Bytes(MiB + 512, 3)); // the short last block
            chain.Write(0, new byte[2 * MiB]);                        // zeros over nothing: no block
        }
        long length = new FileInfo(path).Length;
        var footer = VhdTestKit.ReadAt(path, length - 512, 512);
        Assert.Equal(footer, VhdTestKit.ReadAt(path, 0, 512));
        Assert.Equal(512ul, U64(footer, 16));
        Assert.Equal(3u, U32(footer, 60));
        AssertChecksum(footer, 64);

        var header = VhdTestKit.ReadAt(path, 512, 1024);
        Assert.Equal("cxsparse"u8.ToArray(), header[..8]);
        Assert.Equal(ulong.MaxValue, U64(header, 8));
        Assert.Equal(1536ul, U64(header, 16));
        Assert.Equal(0x00010000u, U32(header, 24));
        Assert.Equal(5u, U32(header, 28));                      // Max Table Entries: exactly ceil(size / 2 MiB)
        Assert.Equal(2u * MiB, U32(header, 32));
        AssertChecksum(header, 36);

        var bat = VhdTestKit.ReadAt(path, 1536, 512);
        var entries = Enumerable.Range(0, 5).Select(i => U32(bat, 4 * i)).ToArray();
        Assert.Equal(new[] { 0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu }, new[] { entries[0], entries[2], entries[3] });
        Assert.All(bat[20..], b => Assert.Equal(0xFF, b));      // padding of the table
        foreach (uint e in new[] { entries[1], entries[4] })
        {
            long bitmapAt = e * 512L;
            Assert.Equal(0, (bitmapAt + 512) % 4096);
            Assert.All(VhdTestKit.ReadAt(path, bitmapAt, 512), b => Assert.Equal(0xFF, b)); // a dynamic block is whole
        }
        Assert.Equal(RandomData.Bytes(100, 2), VhdTestKit.ReadAt(path, entries[1] * 512L + 512 + MiB + 5, 100));
    }

    [Fact]
    public void A_differencing_disk_writes_whole_4KiB_units_so_every_bitmap_byte_is_all_or_nothing()
    {
        string parent = _dir.File("p.vhd"), child = _dir.File("c.vhd");
        using (VhdTestKit.Create(parent, 4L * MiB)) { }
        using (var c = DiskImage.CreateDifferencing(child, parent))
        {
            var (off, len) = c.GetWriteSpan(5000, 100);
            Assert.Equal((4096L, 4096L), (off, len));
        }
        using (var chain = DiskImage.Open(child, OpenOptions.ReadWrite))
        {
            chain.Write(5000, RandomData.Bytes(100, 4));
            chain.Write(MiB + 12345, RandomData.Bytes(20000, 5));
        }
        using var layer = DiskImage.OpenLayer(child, false);
        var vhd = (VhdLayer)layer;
        uint entry = vhd.Bat!.Get(0);
        var bitmap = VhdTestKit.ReadAt(child, entry * 512L, 512);
        Assert.All(bitmap, b => Assert.True(b is 0 or 0xFF, $"bitmap byte 0x{b:X2}"));
        Assert.Equal(0xFF, bitmap[1]);                           // sectors 8..15: bytes 4096..8191
        Assert.Equal(0, bitmap[0]);
        // Present units are data of this layer; the rest is the parent's.
        var extents = layer.GetStatus(0, 2L * MiB);
        Assert.Equal((ExtentKind.NotPresent, 4096L), (extents.Kind, extents.Length));
    }

    [Fact]
    public void Differencing_children_link_to_a_VHD_parent_only_and_VDI_children_may_sit_on_a_VHD()
    {
        string vhd = _dir.File("p.vhd"), vdi = _dir.File("p.vdi"), vhdx = _dir.File("p.vhdx");
        using (VhdTestKit.Create(vhd, 4L * MiB)) { }
        using (DiskImage.Create(vdi, new ImageCreateOptions(4L * MiB))) { }
        var e = Assert.Throws<Errors.DiskImageException>(() => DiskImage.CreateDifferencing(_dir.File("c.vhd"), vdi).Dispose());
        Assert.Equal(Errors.ErrorKind.Unsupported, e.Kind);
        Assert.Contains("must be a VHD, not vdi", e.Message);
        Assert.False(File.Exists(_dir.File("c.vhd")));
        Assert.Throws<Errors.DiskImageException>(() => DiskImage.CreateDifferencing(vhdx, vhd).Dispose());
        using (DiskImage.CreateDifferencing(_dir.File("c.vdi"), vhd)) { }
        using var chain = DiskImage.Open(_dir.File("c.vdi"));
        Assert.Equal(new[] { ImageFormat.Vdi, ImageFormat.Vhd }, chain.Layers.Select(l => l.Format));
    }
}
