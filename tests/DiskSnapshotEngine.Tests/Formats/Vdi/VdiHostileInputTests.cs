using System.Buffers.Binary;
using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.Formats.Vdi;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Formats.Vdi;

/// <summary>Damaged and malicious VDI files: a typed error with the structure and offset, no crash, no hang, no huge allocation, file unchanged.</summary>
public sealed class VdiHostileInputTests
{
    private const int Block = 4096;
    private const int Blocks = 16;

    /// <summary>A compact valid image as qemu lays it out: header, map at 512, data at 1024; blocks 0..5 allocated.</summary>
    private static byte[] ValidImage()
    {
        var sim = new CrashSimulationFile("/sim/src.vdi");
        using (var l = new VdiDriver().Create(sim, new ImageCreateOptions(Blocks * Block, BlockSize: Block), null))
            for (int i = 0; i < 6; i++) l.Write((long)i * Block, RandomData.Bytes(Block, i + 1));
        var full = sim.CurrentContent();
        var img = new byte[1024 + 6 * Block];
        full.AsSpan(0, 472).CopyTo(img);
        BinaryPrimitives.WriteUInt32LittleEndian(img.AsSpan(340), 512);
        BinaryPrimitives.WriteUInt32LittleEndian(img.AsSpan(344), 1024);
        full.AsSpan(1 << 20, Blocks * 4).CopyTo(img.AsSpan(512));
        full.AsSpan(2 << 20, 6 * Block).CopyTo(img.AsSpan(1024));
        return img;
    }

    private static void Set32(byte[] b, int off, uint v) => BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(off), v);

    [Fact]
    public void The_compact_reference_image_is_valid()
    {
        var img = ValidImage();
        using var layer = new VdiDriver().Open(new CrashSimulationFile("/sim/ok.vdi", img), false);
        using var chain = new DiskChain(new[] { layer });
        var b = new byte[Block];
        chain.Read(5 * Block, b);
        Assert.Equal(RandomData.Bytes(Block, 6), b);
        Assert.True(chain.Check().IsClean, string.Join("; ", chain.Check().Problems));
    }

    public static TheoryData<string, ErrorKind, string?, long?> HeaderDamage => new()
    {
        { "bad signature", ErrorKind.InvalidFormat, "VDIPREHEADER", 64 },
        { "version 2.0", ErrorKind.Unsupported, "VDIPREHEADER", 68 },
        { "cBlocks inconsistent with cbDisk", ErrorKind.CorruptImage, "VDIHEADER1", 384 },
        { "huge cbDisk", ErrorKind.CorruptImage, "VDIHEADER1", 384 },
        { "huge cBlocks and matching cbDisk", ErrorKind.CorruptImage, "blocks array", 512 },
        { "huge cbBlock", ErrorKind.Unsupported, "VDIHEADER1", 376 },
        { "zero cbBlock", ErrorKind.CorruptImage, "VDIHEADER1", 376 },
        { "huge cbHeader", ErrorKind.CorruptImage, "VDIHEADER1", 340 },
        { "small cbHeader", ErrorKind.CorruptImage, "VDIHEADER1", 72 },
        { "offData inside the map", ErrorKind.CorruptImage, "VDIHEADER1", 344 },
        { "unknown type", ErrorKind.CorruptImage, "VDIHEADER1", 76 },
        { "cBlocksAllocated above cBlocks", ErrorKind.CorruptImage, "VDIHEADER1", 388 },
        { "differencing without uuidLinkage", ErrorKind.CorruptImage, "VDIHEADER1", 424 },
        { "truncated in the header", ErrorKind.CorruptImage, "VDIHEADER1", 72 },
        { "truncated in the pre-header", ErrorKind.InvalidFormat, "VDIPREHEADER", 64 },
        { "cbDisk zero", ErrorKind.CorruptImage, "VDIHEADER1", 368 },
        { "huge cbBlockExtra", ErrorKind.Unsupported, "VDIHEADER1", 380 },
        { "odd cbBlockExtra", ErrorKind.CorruptImage, "VDIHEADER1", 380 },
    };

    private static byte[] Damage(string what)
    {
        var b = ValidImage();
        switch (what)
        {
            case "bad signature": Set32(b, 64, 0xBEDA1070); break;
            case "version 2.0": Set32(b, 68, 0x00020000); break;
            case "cBlocks inconsistent with cbDisk": Set32(b, 384, Blocks + 1); break;
            case "huge cbDisk": BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(368), 1UL << 62); break;
            case "huge cBlocks and matching cbDisk":
                // A 4 GiB map the 25 KiB file does not hold: refused before anything of that size is allocated.
                BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(368), 0x3FFFFF00UL * Block);
                Set32(b, 384, 0x3FFFFF00);
                Set32(b, 344, 0xFFFFFFFF);
                break;
            case "huge cbBlock": Set32(b, 376, 0x80000000); break;
            case "zero cbBlock": Set32(b, 376, 0); break;
            case "huge cbHeader": Set32(b, 72, 0xFFFFFF00); break;
            case "small cbHeader": Set32(b, 72, 100); break;
            case "offData inside the map": Set32(b, 344, 520); break;
            case "unknown type": Set32(b, 76, 9); break;
            case "cBlocksAllocated above cBlocks": Set32(b, 388, Blocks + 1); break;
            case "differencing without uuidLinkage": Set32(b, 76, 4); break;
            case "truncated in the header": b = b[..200]; break;
            case "truncated in the pre-header": b = b[..50]; break;
            case "huge cbBlockExtra": Set32(b, 380, 0x40000000); break;
            case "odd cbBlockExtra": Set32(b, 380, 100); break;
            case "cbDisk zero": BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(368), 0); break;
        }
        return b;
    }

    [Theory]
    [MemberData(nameof(HeaderDamage))]
    public void Damaged_headers_fail_to_open_with_a_typed_error_and_the_file_stays_unchanged(string what, ErrorKind kind, string? structure, long? offset)
    {
        using var dir = new TempDirectory("vdi-hostile");
        string path = dir.File("bad.vdi");
        var bytes = Damage(what);
        File.WriteAllBytes(path, bytes);
        long allocated = GC.GetAllocatedBytesForCurrentThread();
        var e = Assert.Throws<DiskImageException>(() =>
        {
            using var file = DiskSnapshotEngine.IO.ImageFile.Open(path, true);
            new VdiDriver().Open(file, writable: true).Dispose();
        });
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - allocated < 1 << 20, "a failed open allocated more than 1 MiB");
        Assert.Equal(kind, e.Kind);
        Assert.Equal(structure, e.Structure);
        Assert.Equal(offset, e.FileOffset);
        Assert.Contains(path, e.Message);
        Assert.Equal(bytes, File.ReadAllBytes(path));
        // Through the public entry point too (format detection first, then the driver).
        var e2 = Assert.Throws<DiskImageException>(() => DiskImage.Open(path, OpenOptions.ReadWrite).Dispose());
        Assert.Equal(kind, e2.Kind);
        Assert.Equal(bytes, File.ReadAllBytes(path));
    }

    [Fact]
    public void Blocks_with_a_cbBlockExtra_area_read_and_allocate_past_it()
    {
        const int extra = 512;
        var valid = ValidImage();
        var b = new byte[1024 + 6 * (Block + extra)];
        valid.AsSpan(0, 1024).CopyTo(b);
        Set32(b, 380, extra);
        for (int i = 0; i < 6; i++)
        {
            b.AsSpan(1024 + i * (Block + extra), extra).Fill(0xEE); // the extra area is not disk content
            valid.AsSpan(1024 + i * Block, Block).CopyTo(b.AsSpan(1024 + i * (Block + extra) + extra));
        }
        var file = new CrashSimulationFile("/sim/extra.vdi", b);
        using (var layer = new VdiDriver().Open(file, true))
        using (var chain = new DiskChain(new[] { layer }))
        {
            var r = new byte[Block];
            chain.Read(3 * Block, r);
            Assert.Equal(RandomData.Bytes(Block, 4), r);
            Assert.Equal(ExtentKind.Data, layer.GetStatus(0, 2 * Block).Kind);
            Assert.Equal(Block, layer.GetStatus(0, 2 * Block).Length); // blocks are not contiguous in the file
            chain.Write(9 * Block + 10, RandomData.Bytes(100, 50));
        }
        using var reopened = new VdiDriver().Open(new CrashSimulationFile("/sim/extra.vdi", file.CurrentContent()), false);
        using var c2 = new DiskChain(new[] { reopened });
        var back = new byte[100];
        c2.Read(9 * Block + 10, back);
        Assert.Equal(RandomData.Bytes(100, 50), back);
        Assert.Equal(1024 + 6 * (Block + extra) + extra, reopened.GetStatus(9 * Block, Block).FileOffset);
        Assert.True(c2.Check().IsClean, string.Join("; ", c2.Check().Problems));
    }

    [Fact]
    public void A_map_entry_out_of_range_is_corrupt_on_read_and_an_error_in_check()
    {
        var b = ValidImage();
        Set32(b, 512 + 4 * 2, 1000);
        using var layer = new VdiDriver().Open(new CrashSimulationFile("/sim/bad.vdi", b), false);
        var e = Assert.Throws<DiskImageException>(() => layer.GetStatus(2 * Block, 10));
        Assert.Equal(ErrorKind.CorruptImage, e.Kind);
        Assert.Equal("blocks array", e.Structure);
        Assert.Equal(512 + 8, e.FileOffset);
        var report = layer.Check();
        Assert.Contains(report.Problems, p => p.Severity == CheckSeverity.Error && p.FileOffset == 520 && p.Message.Contains("outside"));
        // Other blocks still read (rescue).
        Assert.Equal(ExtentKind.Data, layer.GetStatus(0, Block).Kind);
    }

    [Fact]
    public void A_map_entry_beyond_the_end_of_the_file_is_corrupt()
    {
        var b = ValidImage();
        Set32(b, 512 + 4 * 9, 12); // block 12 is inside cBlocks but the file holds 6 blocks
        using var layer = new VdiDriver().Open(new CrashSimulationFile("/sim/bad.vdi", b), false);
        var e = Assert.Throws<DiskImageException>(() => layer.GetStatus(9 * Block, Block));
        Assert.Equal(ErrorKind.CorruptImage, e.Kind);
        Assert.Contains("beyond the end of the file", e.Message);
        Assert.Contains(layer.Check().Problems, p => p.Severity == CheckSeverity.Error && p.Message.Contains("beyond the end"));
    }

    [Fact]
    public void Duplicated_map_entries_are_reported_by_check()
    {
        var b = ValidImage();
        Set32(b, 512 + 4 * 1, 0); // blocks 0 and 1 share data block 0
        using var layer = new VdiDriver().Open(new CrashSimulationFile("/sim/bad.vdi", b), false);
        var report = layer.Check();
        Assert.Contains(report.Problems, p => p.Severity == CheckSeverity.Error && p.FileOffset == 516 && p.Message.Contains("already uses"));
    }

    [Fact]
    public void Header_oddities_that_still_read_are_warnings_in_check()
    {
        var b = ValidImage();
        Set32(b, 348 + 12, 4096);              // LegacyGeometry.cbSector
        Guid.NewGuid().TryWriteBytes(b.AsSpan(424)); // uuidLinkage on a base image
        using var layer = new VdiDriver().Open(new CrashSimulationFile("/sim/odd.vdi", b), false);
        var report = layer.Check();
        Assert.False(report.HasErrors);
        Assert.Contains(report.Problems, p => p.Severity == CheckSeverity.Warning && p.Message.Contains("cbSector"));
        Assert.Contains(report.Problems, p => p.Severity == CheckSeverity.Warning && p.Message.Contains("uuidLinkage"));
        Assert.Null(layer.ParentLink);
    }

    [Fact]
    public void Random_damage_never_escapes_as_anything_but_a_DiskImageException()
    {
        var valid = ValidImage();
        var rng = new Random(20261121);
        int opened = 0;
        for (int round = 0; round < 400; round++)
        {
            var b = (byte[])valid.Clone();
            int flips = rng.Next(1, 6);
            for (int k = 0; k < flips; k++)
            {
                // Mostly the header fields and the map, sometimes anywhere.
                int at = rng.Next(4) switch { 0 => rng.Next(64, 472), 1 => rng.Next(340, 400), 2 => rng.Next(512, 576), _ => rng.Next(b.Length) };
                b[at] = (byte)rng.Next(256);
            }
            if (rng.Next(10) == 0) b = b[..rng.Next(b.Length)];
            try
            {
                using var layer = new VdiDriver().Open(new CrashSimulationFile("/sim/fuzz.vdi", b), false);
                opened++;
                using var chain = new DiskChain(new[] { layer });
                var buf = new byte[Math.Min(chain.VirtualSize, 1 << 20)];
                chain.Read(0, buf);
                _ = chain.GetExtents(0, chain.VirtualSize).Take(1000).ToList();
                chain.Check();
            }
            catch (DiskImageException)
            {
            }
        }
        Assert.InRange(opened, 1, 399); // some damage is harmless, some is caught at open
    }
}
