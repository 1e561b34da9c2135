using System.Buffers.Binary;
using System.Text;
using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Formats.Vhd;

/// <summary>
/// Each corruption of a footer, dynamic header, BAT or parent locator gives its exact error kind and names the
/// structure; the file's bytes never change, even for a read-write open. Offsets are those of the layout we write:
/// footer copy at 0, dynamic header at 512, BAT at 1536, the footer at the end.
/// </summary>
public sealed class VhdHostileInputTests : IDisposable
{
    private const int MiB = VhdTestKit.MiB;
    private const long Header = 512, Bat = 1536;
    private readonly TempDirectory _dir = new("vhd-hostile");
    private readonly string _dynamic, _fixed, _child;

    public VhdHostileInputTests()
    {
        _dynamic = _dir.File("d.vhd");
        _fixed = _dir.File("f.vhd");
        _child = _dir.File("c.vhd");
        using (var layer = VhdTestKit.Create(_dynamic, 8L * MiB))
        using (var chain = new DiskChain(new[] { layer }))
            chain.Write(0, RandomData.Bytes(3 * MiB, 1));
        using (var layer = VhdTestKit.Create(_fixed, 4L * MiB, ImageType.Fixed)) layer.Write(0, RandomData.Bytes(4096, 2));
        DiskImage.CreateDifferencing(_child, _dynamic).Dispose();
    }

    public void Dispose() => _dir.Dispose();

    private static long FooterAt(string path) => new FileInfo(path).Length - 512;

    private static void PatchU32(string path, long at, uint v)
    {
        var b = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(b, v);
        VhdTestKit.Patch(path, at, b);
    }

    private static void PatchU64(string path, long at, ulong v)
    {
        var b = new byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(b, v);
        VhdTestKit.Patch(path, at, b);
    }

    /// <summary>Patches a field of the footer at the end (and its copy), resealing both.</summary>
    private static void PatchFooter(string path, int field, Action<string, long> patch)
    {
        long end = FooterAt(path);
        var at = new List<long> { end };
        if (Encoding.ASCII.GetString(VhdTestKit.ReadAt(path, 0, 8)) == "conectix") at.Add(0);
        foreach (long f in at)
        {
            patch(path, f + field);
            VhdTestKit.ResealFooter(path, f);
        }
    }

    private static void PatchHeader(string path, int field, Action<string, long> patch)
    {
        patch(path, Header + field);
        VhdTestKit.ResealHeader(path, Header);
    }

    [Fact]
    public void No_footer_anywhere_is_not_a_vhd() 
    {
        VhdTestKit.Patch(_dynamic, 0, new byte[8]);
        VhdTestKit.Patch(_dynamic, FooterAt(_dynamic), new byte[8]);
        HostileInput.Expect(_dynamic, ErrorKind.InvalidFormat, "file signature");
    }

    [Fact]
    public void A_footer_checksum_that_does_not_match_with_no_good_copy_is_corrupt()
    {
        VhdTestKit.Patch(_fixed, FooterAt(_fixed) + 100, new byte[] { 1 });
        HostileInput.Expect(_fixed, ErrorKind.CorruptImage, "hard disk footer", "Checksum");
        VhdTestKit.Patch(_dynamic, FooterAt(_dynamic) + 100, new byte[] { 1 });
        VhdTestKit.Patch(_dynamic, 100, new byte[] { 1 });
        HostileInput.Expect(_dynamic, ErrorKind.CorruptImage, "hard disk footer", "Checksum");
    }

    [Theory]
    [InlineData(12, 0x00020000u, ErrorKind.Unsupported, "File Format Version")]
    [InlineData(60, 5u, ErrorKind.Unsupported, "Disk Type")]
    [InlineData(60, 1u, ErrorKind.Unsupported, "Disk Type")]
    public void Footer_fields_of_unknown_versions_and_types(int field, uint value, ErrorKind kind, string message)
    {
        PatchFooter(_dynamic, field, (p, at) => PatchU32(p, at, value));
        HostileInput.Expect(_dynamic, kind, "hard disk footer", message);
    }

    [Theory]
    [InlineData(0ul, ErrorKind.CorruptImage, "Current Size 0")]
    [InlineData(1000ul, ErrorKind.CorruptImage, "multiple of 512")]
    [InlineData(1ul << 50, ErrorKind.Unsupported, "Current Size")]
    [InlineData(1ul << 63, ErrorKind.Unsupported, "Current Size")]
    public void Hostile_current_sizes(ulong size, ErrorKind kind, string message)
    {
        PatchFooter(_dynamic, 48, (p, at) => PatchU64(p, at, size));
        HostileInput.Expect(_dynamic, kind, "hard disk footer", message);
    }

    [Fact]
    public void A_fixed_disk_claiming_more_data_than_the_file_holds_is_corrupt()
    {
        PatchFooter(_fixed, 48, (p, at) => PatchU64(p, at, 8L * MiB));
        HostileInput.Expect(_fixed, ErrorKind.CorruptImage, "hard disk footer", "larger than");
    }

    [Theory]
    [InlineData(0ul)]
    [InlineData(100ul)]
    [InlineData(1ul << 40)]
    [InlineData(ulong.MaxValue)]
    public void A_data_offset_that_names_no_header_is_corrupt(ulong offset)
    {
        PatchFooter(_dynamic, 16, (p, at) => PatchU64(p, at, offset));
        HostileInput.Expect(_dynamic, ErrorKind.CorruptImage, "hard disk footer", "Data Offset");
    }

    [Fact]
    public void A_dynamic_header_without_its_cookie_or_with_a_bad_checksum_is_corrupt()
    {
        VhdTestKit.Patch(_dynamic, Header + 100, new byte[] { 0x77 });
        HostileInput.Expect(_dynamic, ErrorKind.CorruptImage, "dynamic disk header", "Checksum");
        PatchHeader(_dynamic, 0, (p, at) => VhdTestKit.Patch(p, at, "cxsparsX"u8));
        HostileInput.Expect(_dynamic, ErrorKind.CorruptImage, "dynamic disk header", "cookie");
    }

    [Theory]
    [InlineData(24, 0x00020000u, ErrorKind.Unsupported, "Header Version")]
    [InlineData(32, 0u, ErrorKind.CorruptImage, "Block Size 0")]
    [InlineData(32, 3000u, ErrorKind.CorruptImage, "Block Size 3000")]
    [InlineData(32, 3u << 20, ErrorKind.Unsupported, "power of two")]
    [InlineData(32, 1u << 30, ErrorKind.Unsupported, "power of two")]
    [InlineData(28, 3u, ErrorKind.CorruptImage, "Max Table Entries")]
    [InlineData(28, 0x7FFFFFFFu, ErrorKind.CorruptImage, "Table Offset")]
    public void Hostile_dynamic_header_fields(int field, uint value, ErrorKind kind, string message)
    {
        PatchHeader(_dynamic, field, (p, at) => PatchU32(p, at, value));
        HostileInput.Expect(_dynamic, kind, "dynamic disk header", message);
    }

    [Theory]
    [InlineData(512ul, "overlaps")]
    [InlineData(1ul << 40, "Table Offset")]
    [InlineData(ulong.MaxValue, "Table Offset")]
    public void A_table_offset_outside_the_file_or_over_the_header_is_corrupt(ulong offset, string message)
    {
        PatchHeader(_dynamic, 16, (p, at) => PatchU64(p, at, offset));
        HostileInput.Expect(_dynamic, ErrorKind.CorruptImage, "dynamic disk header", message);
    }

    [Theory]
    [InlineData(0u, "inside the footer copy")]
    [InlineData(1u, "inside the dynamic disk header")]
    [InlineData(3u, "inside the BAT")]
    [InlineData(0x7FFFFFFEu, "past the footer")]
    public void A_BAT_entry_pointing_at_metadata_or_past_the_footer_is_corrupt(uint sector, string message)
    {
        PatchU32(_dynamic, Bat, sector);
        HostileInput.Expect(_dynamic, ErrorKind.CorruptImage, "BAT", message);
    }

    [Fact]
    public void A_differencing_disk_naming_no_parent_is_corrupt()
    {
        PatchHeader(_child, 40, (p, at) => VhdTestKit.Patch(p, at, new byte[16]));
        HostileInput.Expect(_child, ErrorKind.CorruptImage, "dynamic disk header", "Parent Unique ID");
    }

    [Theory]
    [InlineData(8, 1u << 30, "claims")]            // Platform Data Length
    [InlineData(16, 0x7FFFFFFFu, "outside")]       // Platform Data Offset (high half of the 8-byte field)
    public void Hostile_parent_locator_entries_are_corrupt(int field, uint value, string message)
    {
        PatchHeader(_child, 576 + field, (p, at) => PatchU32(p, at, value));
        HostileInput.Expect(_child, ErrorKind.CorruptImage, "parent locator entry", message);
    }

    [Fact]
    public void A_locator_path_holding_a_NUL_is_corrupt()
    {
        using (var layer = DiskImage.OpenLayer(_child, false))
        {
            var w2ru = layer.Details.First(d => d.Key == "Parent Locator Entry 0 Platform Code").Value;
            Assert.Equal("W2ru", w2ru);
        }
        // ".\d.vhd" in UTF-16: put a NUL between the dot and the backslash.
        long data = (long)BinaryPrimitives.ReadUInt64BigEndian(VhdTestKit.ReadAt(_child, Header + 576 + 16, 8));
        VhdTestKit.Patch(_child, data + 2, new byte[2]);
        HostileInput.Expect(_child, ErrorKind.CorruptImage, "parent locator", "no path can hold");
    }
}
