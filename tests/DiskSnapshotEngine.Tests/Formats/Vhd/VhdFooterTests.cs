using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.Formats.Vhd;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Formats.Vhd;

/// <summary>
/// The footer's variants: found at the end of the file (512 bytes, or 511 for images made before Virtual PC 2004),
/// recovered from its copy at offset 0 when the end of the file is damaged (opens never write; the first change writes it
/// back), and the disk size taken from Current Size, never from the geometry.
/// </summary>
public sealed class VhdFooterTests : IDisposable
{
    private const int MiB = VhdTestKit.MiB;
    private readonly TempDirectory _dir = new("vhd-footer");

    public void Dispose() => _dir.Dispose();

    private string MakeDynamic(out byte[] content)
    {
        string path = _dir.File("d.vhd");
        using (var layer = VhdTestKit.Create(path, 8L * MiB))
        using (var chain = new DiskChain(new[] { layer }))
        {
            chain.Write(12345, RandomData.Bytes(3 * MiB, 1));
            content = VhdTestKit.Content(chain);
        }
        return path;
    }

    [Fact]
    public void A_damaged_footer_is_read_from_the_copy_without_writing_and_the_first_change_writes_it_back()
    {
        string path = MakeDynamic(out var content);
        long length = new FileInfo(path).Length;
        // A torn footer write: the last sector holds garbage.
        VhdTestKit.Patch(path, length - 512, RandomData.Bytes(512, 9));
        string damaged = ContentHash.OfFile(path);

        using (var chain = DiskImage.Open(path))
        {
            Assert.Equal(content, VhdTestKit.Content(chain));
            var report = chain.Check();
            Assert.False(report.HasErrors, string.Join("\n", report.Problems));
            Assert.Contains(report.Problems, p => p.Severity == CheckSeverity.Warning && p.Structure == "hard disk footer" && p.Message.Contains("copy at offset 0"));
        }
        Assert.Equal(damaged, ContentHash.OfFile(path));

        using (var chain = DiskImage.Open(path, OpenOptions.ReadWrite))
            Assert.Equal(content, VhdTestKit.Content(chain));
        Assert.Equal(damaged, ContentHash.OfFile(path)); // a writable open that only read
        using (var chain = DiskImage.Open(path, OpenOptions.ReadWrite))
        {
            chain.Write(100, RandomData.Bytes(10, 3));
            RandomData.Bytes(10, 3).CopyTo(content, 100);
        }
        Assert.Equal(VhdFooterBytes(path, 0), VhdTestKit.ReadAt(path, new FileInfo(path).Length - 512, 512));
        using (var chain = DiskImage.Open(path))
        {
            Assert.True(chain.Check().IsClean, string.Join("\n", chain.Check().Problems));
            // Writing on after the repair: new blocks go after everything, the content stays right.
            chain.Dispose();
            using var w = DiskImage.Open(path, OpenOptions.ReadWrite);
            w.Write(6L * MiB, RandomData.Bytes(MiB, 2));
            RandomData.Bytes(MiB, 2).CopyTo(content, 6 * MiB);
            Assert.Equal(content, VhdTestKit.Content(w));
        }
    }

    [Fact]
    public void A_truncated_footer_write_is_recovered_too()
    {
        string path = MakeDynamic(out var content);
        long length = new FileInfo(path).Length;
        using (var f = new FileStream(path, FileMode.Open)) f.SetLength(length - 200);
        using (var chain = DiskImage.Open(path))
            Assert.Equal(content, VhdTestKit.Content(chain));
        using (var chain = DiskImage.Open(path, OpenOptions.ReadWrite))
            chain.WriteZeroes(0, 2 * MiB);
        Array.Clear(content, 0, 2 * MiB);
        Assert.Equal(0, new FileInfo(path).Length % 512);
        using var again = DiskImage.Open(path);
        Assert.True(again.Check().IsClean, string.Join("\n", again.Check().Problems));
    }

    [Fact]
    public void A_fixed_disk_has_no_copy_so_a_damaged_footer_is_an_error()
    {
        string path = _dir.File("f.vhd");
        using (VhdTestKit.Create(path, 4L * MiB, ImageType.Fixed)) { }
        VhdTestKit.Patch(path, 4L * MiB + 70, new byte[] { 0x12 });
        var e = Assert.Throws<Errors.DiskImageException>(() => DiskImage.Open(path).Dispose());
        Assert.Equal(Errors.ErrorKind.CorruptImage, e.Kind);
        Assert.Equal("hard disk footer", e.Structure);
        Assert.Contains("Checksum", e.Message);
    }

    [Fact]
    public void A_511_byte_footer_of_an_old_image_is_read()
    {
        string path = _dir.File("old.vhd");
        using (var layer = VhdTestKit.Create(path, 2L * MiB, ImageType.Fixed))
            layer.Write(0, RandomData.Bytes(2 * MiB, 4));
        // Drop the last reserved byte: the footer is now the file's last 511 bytes, its checksum unchanged.
        using (var f = new FileStream(path, FileMode.Open)) f.SetLength(2L * MiB + 511);
        using var chain = DiskImage.Open(path);
        Assert.Equal(2L * MiB, chain.VirtualSize);
        Assert.Equal(RandomData.Bytes(2 * MiB, 4), VhdTestKit.Content(chain));
        Assert.Contains(chain.Check().Problems, p => p.Message.Contains("511-byte footer"));
    }

    [Fact]
    public void The_size_is_Current_Size_whatever_the_geometry_says()
    {
        string path = _dir.File("g.vhd");
        const long size = 10L * MiB;
        using (VhdTestKit.Create(path, size, ImageType.Fixed)) { }
        // A geometry of only 100 sectors, as a CHS-based reader would use it.
        VhdTestKit.Patch(path, size + 56, new byte[] { 0, 1, 4, 25 });
        VhdTestKit.ResealFooter(path, size);
        using var chain = DiskImage.Open(path);
        Assert.Equal(size, chain.VirtualSize);
        Assert.Contains(chain.Check().Problems, p => p.Severity == CheckSeverity.Warning && p.Message.Contains("qemu reads a disk of that size"));
    }

    [Theory]
    [InlineData(10L * MiB)]           // no calculated geometry covers it: the maximum one
    [InlineData(301L * 4 * 17 * 512)] // exactly 301 cylinders, 4 heads, 17 sectors
    public void We_write_the_calculated_geometry_only_when_it_covers_the_size(long size)
    {
        var g = VhdDiskGeometry.For(size);
        var calculated = VhdDiskGeometry.Calculate(size);
        if (calculated.Sectors * 512 == size) Assert.Equal(calculated, g);
        else Assert.Equal(VhdDiskGeometry.Maximum, g);
        Assert.True(g.Sectors * 512 >= size || g == VhdDiskGeometry.Maximum);
    }

    [Fact]
    public void A_raw_image_without_a_footer_stays_raw()
    {
        string path = _dir.File("plain.img");
        File.WriteAllBytes(path, RandomData.Bytes(MiB, 5));
        using var chain = DiskImage.Open(path);
        Assert.Equal(ImageFormat.Raw, chain.Top.Format);
    }

    private static byte[] VhdFooterBytes(string path, long offset) => VhdTestKit.ReadAt(path, offset, 512);
}
