using System.Buffers.Binary;
using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.Formats.Vhdx;
using DiskSnapshotEngine.IO;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Formats.Vhdx;

/// <summary>
/// Each corruption gives its exact error kind and names the structure; the file's bytes never change, even for a
/// read-write open. Offsets are those of the layout our driver writes: metadata region at 2 MiB, BAT at 3 MiB.
/// </summary>
public class VhdxHostileInputTests : IDisposable
{
    private const long Meta = 2L << 20, Bat = 3L << 20;
    private readonly TempDirectory _dir = new("vhdx-hostile");
    private readonly string _path;

    public VhdxHostileInputTests()
    {
        _path = _dir.File("h.vhdx");
        using var layer = DiskImage.Create(_path, new ImageCreateOptions(8L << 20, BlockSize: 1 << 20));
        layer.Write(0, Enumerable.Repeat((byte)7, 4096).ToArray());
    }

    public void Dispose() => _dir.Dispose();

    private void Patch(long offset, ReadOnlySpan<byte> bytes)
    {
        using var f = new FileStream(_path, FileMode.Open, FileAccess.ReadWrite);
        f.Position = offset;
        f.Write(bytes);
    }

    private void PatchU64(long offset, ulong v) { var b = new byte[8]; BinaryPrimitives.WriteUInt64LittleEndian(b, v); Patch(offset, b); }
    private void PatchU32(long offset, uint v) { var b = new byte[4]; BinaryPrimitives.WriteUInt32LittleEndian(b, v); Patch(offset, b); }

    /// <summary>Recomputes the CRC-32C of a header (4 KiB) or region table (64 KiB) after a patch.</summary>
    private void Reseal(long offset, int size)
    {
        var b = File.ReadAllBytes(_path).AsSpan((int)offset, size).ToArray();
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(4), 0);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(4), Crc32C.Compute(b));
        Patch(offset, b);
    }

    private void PatchRegionTables(Action<long> patch)
    {
        foreach (long t in new[] { 192L << 10, 256L << 10 })
        {
            patch(t);
            Reseal(t, 64 << 10);
        }
    }

    /// <summary>Opens read-only and read-write, reads the whole disk, and expects the same typed error; the file stays unchanged.</summary>
    private DiskImageException Expect(ErrorKind kind, string structure, string? messagePart = null) =>
        HostileInput.Expect(_path, kind, structure, messagePart);

    [Fact]
    public void Bad_file_signature_is_invalid_format()
    {
        Patch(0, "vhdxfilX"u8);
        string before = ContentHash.OfFile(_path);
        using (var f = ImageFile.Open(_path, false))
        {
            var e = Assert.Throws<DiskImageException>(() => new VhdxDriver().Open(f, false));
            Assert.Equal(ErrorKind.InvalidFormat, e.Kind);
            Assert.Equal("file type identifier", e.Structure);
        }
        Assert.Equal(before, ContentHash.OfFile(_path));
    }

    [Fact]
    public void Both_headers_with_a_bad_crc_are_corrupt_and_one_good_header_suffices()
    {
        Patch((64L << 10) + 100, new byte[] { 0xFF });
        using (var chain = DiskImage.Open(_path)) Assert.Contains(chain.Check().Problems, p => p.Structure == "header 1");
        Patch((128L << 10) + 100, new byte[] { 0xFF });
        Expect(ErrorKind.CorruptImage, "header", "CRC-32C");
    }

    [Fact]
    public void Both_region_tables_bad_is_corrupt()
    {
        Patch((192L << 10) + 40, new byte[] { 0xFF });
        Patch((256L << 10) + 40, new byte[] { 0xFF });
        Expect(ErrorKind.CorruptImage, "region table", "CRC-32C");
    }

    [Fact]
    public void Overlapping_regions_are_corrupt()
    {
        // Entry 1 (metadata) moved onto the BAT.
        PatchRegionTables(t => PatchU64(t + 16 + 32 + 16, (ulong)Bat));
        Expect(ErrorKind.CorruptImage, "region table entry", "overlaps");
    }

    [Fact]
    public void Region_inside_the_header_area_is_corrupt()
    {
        PatchRegionTables(t => PatchU64(t + 16 + 16, 0));
        Expect(ErrorKind.CorruptImage, "region table entry", "header area");
    }

    [Fact]
    public void Unknown_required_region_is_unsupported_naming_its_guid()
    {
        var id = Guid.Parse("11111111-2222-3333-4444-555555555555");
        PatchRegionTables(t =>
        {
            PatchU32(t + 8, 3);
            var entry = new byte[32];
            id.TryWriteBytes(entry);
            BinaryPrimitives.WriteUInt64LittleEndian(entry.AsSpan(16), 5L << 20);
            BinaryPrimitives.WriteUInt32LittleEndian(entry.AsSpan(24), 1 << 20);
            BinaryPrimitives.WriteUInt32LittleEndian(entry.AsSpan(28), 1);
            Patch(t + 16 + 64, entry);
        });
        Expect(ErrorKind.Unsupported, "region table entry", id.ToString());
    }

    [Fact]
    public void Huge_region_entry_count_is_corrupt()
    {
        PatchRegionTables(t => PatchU32(t + 8, 100_000));
        Expect(ErrorKind.CorruptImage, "region table", "EntryCount");
    }

    [Fact]
    public void Unknown_required_metadata_item_is_unsupported_and_an_optional_one_is_kept()
    {
        var id = Guid.Parse("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee");
        var entry = new byte[32];
        id.TryWriteBytes(entry);
        BinaryPrimitives.WriteUInt32LittleEndian(entry.AsSpan(16), 65600);
        BinaryPrimitives.WriteUInt32LittleEndian(entry.AsSpan(20), 8);
        Patch(Meta + 32 + 32 * 5, entry);
        PatchU32(Meta + 10, 6); // EntryCount (u16) + reserved
        Patch(Meta + 65600, "optional"u8);
        // Optional: opens, writes, and the item survives.
        using (var chain = DiskImage.Open(_path, OpenOptions.ReadWrite)) chain.Write(5 << 20, new byte[] { 1, 2, 3 });
        var bytes = File.ReadAllBytes(_path);
        Assert.Equal(entry, bytes.AsSpan((int)Meta + 32 + 32 * 5, 32).ToArray());
        Assert.Equal("optional"u8.ToArray(), bytes.AsSpan((int)Meta + 65600, 8).ToArray());
        // Required: refused, naming the item.
        PatchU32(Meta + 32 + 32 * 5 + 24, 4);
        Expect(ErrorKind.Unsupported, "metadata table entry", id.ToString());
    }

    [Fact]
    public void Metadata_entry_out_of_range_is_corrupt()
    {
        PatchU32(Meta + 32 + 32 * 1 + 16, 0xFFFFFF00);
        Expect(ErrorKind.CorruptImage, "metadata table entry", "outside the metadata region");
    }

    [Fact]
    public void Huge_virtual_size_is_corrupt()
    {
        PatchU64(Meta + 65544, 1UL << 62);
        Expect(ErrorKind.CorruptImage, "virtual disk size", "64 TiB");
    }

    [Fact]
    public void Block_size_not_a_power_of_two_is_corrupt()
    {
        PatchU32(Meta + 65536, 3 << 20);
        Expect(ErrorKind.CorruptImage, "file parameters", "BlockSize");
    }

    [Fact]
    public void BAT_entry_past_the_end_of_the_file_is_corrupt()
    {
        PatchU64(Bat + 8, (1UL << 40) | 6);
        Expect(ErrorKind.CorruptImage, "BAT entry", "past the end of the file");
    }

    [Fact]
    public void BAT_entry_inside_the_header_area_is_corrupt()
    {
        PatchU64(Bat + 16, 6);
        Expect(ErrorKind.CorruptImage, "BAT entry", "header area");
    }

    [Fact]
    public void BAT_entry_with_a_reserved_state_is_corrupt()
    {
        PatchU64(Bat + 16, 4);
        Expect(ErrorKind.CorruptImage, "BAT entry", "reserved state");
    }

    [Fact]
    public void BAT_entries_sharing_a_block_are_reported_by_check()
    {
        ulong first = BinaryPrimitives.ReadUInt64LittleEndian(File.ReadAllBytes(_path).AsSpan((int)Bat));
        PatchU64(Bat + 8 * 3, first);
        using var layer = DiskImage.OpenLayer(_path, false);
        var report = layer.Check();
        Assert.Contains(report.Problems, p => p.Severity == CheckSeverity.Error && p.Structure == "BAT entry" && p.Message.Contains("overlaps the block"));
    }

    [Fact]
    public void Log_past_the_end_of_the_file_is_corrupt()
    {
        foreach (long h in new[] { 64L << 10, 128L << 10 })
        {
            PatchU64(h + 72, 1UL << 40);
            Reseal(h, 4096);
        }
        Expect(ErrorKind.CorruptImage, "header", "log");
    }

    [Fact]
    public void Parent_locator_naming_the_file_itself_is_a_chain_error()
    {
        var basePath = _dir.File("b.vhdx");
        DiskImage.Create(basePath, new ImageCreateOptions(4L << 20, BlockSize: 1 << 20)).Dispose();
        var child = _dir.File("self.vhdx");
        DiskImage.CreateDifferencing(child, basePath).Dispose();
        using (var c = DiskImage.OpenLayer(child, true))
        {
            var self = ParentDescriptor.Of(c) with { Path = Path.GetFullPath(child) };
            c.SetParent(self);
        }
        string before = ContentHash.OfFile(child);
        var e = Assert.Throws<DiskImageException>(() => DiskImage.Open(child));
        Assert.Equal(ErrorKind.ChainInvalid, e.Kind);
        Assert.Equal(before, ContentHash.OfFile(child));
    }

    [Fact]
    public void Truncated_file_is_corrupt_not_an_index_error()
    {
        using (var f = new FileStream(_path, FileMode.Open)) f.SetLength(100 << 10);
        var e = Assert.Throws<DiskImageException>(() => DiskImage.Open(_path));
        Assert.Equal(ErrorKind.CorruptImage, e.Kind);
        Assert.Equal("header 2", e.Structure);
    }

    [Fact]
    public void Random_byte_corruption_never_escapes_as_an_untyped_exception()
    {
        var original = File.ReadAllBytes(_path);
        var rng = new Random(5);
        var hot = new long[] { 0, 64 << 10, 128 << 10, 192 << 10, 256 << 10, Meta, Meta + 65536, Bat };
        for (int i = 0; i < 150; i++)
        {
            var bytes = (byte[])original.Clone();
            long area = hot[rng.Next(hot.Length)];
            for (int k = 0; k < 1 + rng.Next(4); k++) bytes[area + rng.Next(256)] = (byte)rng.Next(256);
            File.WriteAllBytes(_path, bytes);
            try
            {
                using var chain = DiskImage.Open(_path);
                ContentHash.Of(chain);
                chain.Check();
            }
            catch (DiskImageException) { }
        }
    }
}
