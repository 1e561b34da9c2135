using System.Buffers.Binary;

namespace DiskSnapshotEngine.Tests.Reliability;

/// <summary>
/// Where the interesting bytes of an image are, found by a deliberately small parser independent of the drivers
/// (so a driver bug cannot hide a region from the fuzzer): VHDX file identifier, headers, region tables, metadata,
/// BAT (with its sector-bitmap entries) and log; VDI header and block map; qcow2 header, extensions, L1, L2 and
/// refcount tables and snapshot table; VHD footer and its copy, dynamic disk header, BAT, parent locator data and
/// the first blocks' sector bitmaps. Unknown files: the whole file.
/// </summary>
internal static class StructureMap
{
    public sealed record Region(string Name, long Offset, long Length);

    private static readonly Guid BatGuid = new("2DC27766-F623-4200-9D64-115E9BFD4A08");
    private static readonly Guid MetadataGuid = new("8B7CA206-4790-4B9A-B8FE-575F050F886E");

    public static IReadOnlyList<Region> Of(byte[] image)
    {
        var regions = new List<Region>();
        if (image.Length >= 8 && System.Text.Encoding.ASCII.GetString(image, 0, 8) == "vhdxfile")
            Vhdx(image, regions);
        else if (image.Length >= 72 && BinaryPrimitives.ReadUInt32LittleEndian(image.AsSpan(64)) == 0xBEDA107F)
            Vdi(image, regions);
        else if (image.Length >= 104 && BinaryPrimitives.ReadUInt32BigEndian(image) == 0x514649FB)
            Qcow2(image, regions);
        else if (image.Length >= 512 && System.Text.Encoding.ASCII.GetString(image, image.Length - 512, 8) == "conectix")
            Vhd(image, regions);
        regions.RemoveAll(r => r.Offset < 0 || r.Length <= 0 || r.Offset >= image.Length);
        if (regions.Count == 0) regions.Add(new Region("file", 0, image.Length));
        return regions.Select(r => r with { Length = Math.Min(r.Length, image.Length - r.Offset) }).ToList();
    }

    private static void Vhdx(byte[] b, List<Region> regions)
    {
        regions.Add(new Region("file identifier", 0, 512));
        regions.Add(new Region("header 1", 64 << 10, 4096));
        regions.Add(new Region("header 2", 128 << 10, 4096));
        regions.Add(new Region("region table 1", 192 << 10, 4096));
        regions.Add(new Region("region table 2", 256 << 10, 4096));
        if (b.Length < (128 << 10) + 80) return;
        // Log from the first header (LogLength at 68, LogOffset at 72).
        uint logLength = BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan((64 << 10) + 68));
        long logOffset = (long)BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan((64 << 10) + 72));
        regions.Add(new Region("log", logOffset, Math.Min(logLength, 64 << 10)));
        if (b.Length < (192 << 10) + 4096) return;
        var rt = b.AsSpan(192 << 10, 4096);
        uint count = Math.Min(BinaryPrimitives.ReadUInt32LittleEndian(rt[8..]), 127u);
        long batOffset = -1, batLength = 0, metaOffset = -1;
        for (int i = 0; i < count; i++)
        {
            var e = rt.Slice(16 + 32 * i, 32);
            var guid = new Guid(e[..16]);
            long off = (long)BinaryPrimitives.ReadUInt64LittleEndian(e[16..]);
            uint len = BinaryPrimitives.ReadUInt32LittleEndian(e[24..]);
            if (guid == BatGuid) { batOffset = off; batLength = len; }
            if (guid == MetadataGuid) metaOffset = off;
        }
        if (metaOffset >= 0)
        {
            regions.Add(new Region("metadata table", metaOffset, 4096));
            if (metaOffset + 4096 <= b.Length)
            {
                // Metadata items: entries of 32 bytes after a 32-byte table header; Offset is relative to the region.
                var table = b.AsSpan((int)metaOffset, 4096);
                ushort items = Math.Min(BinaryPrimitives.ReadUInt16LittleEndian(table[10..]), (ushort)127);
                for (int i = 0; i < items; i++)
                {
                    var e = table.Slice(32 + 32 * i, 32);
                    uint off = BinaryPrimitives.ReadUInt32LittleEndian(e[16..]);
                    uint len = BinaryPrimitives.ReadUInt32LittleEndian(e[20..]);
                    regions.Add(new Region($"metadata item {i}", metaOffset + off, Math.Min(len, 4096u)));
                }
            }
        }
        if (batOffset >= 0)
        {
            regions.Add(new Region("BAT", batOffset, Math.Min(batLength, 64 << 10)));
            // Payload and sector-bitmap blocks the BAT points at (first 4 KiB of the first few).
            for (long i = 0; i < Math.Min(batLength / 8, 64); i++)
            {
                long at = batOffset + i * 8;
                if (at + 8 > b.Length) break;
                ulong entry = BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan((int)at));
                long fileOffset = (long)(entry >> 20) << 20;
                if ((entry & 7) is 6 or 7 && fileOffset > 0) regions.Add(new Region($"block of BAT entry {i}", fileOffset, 4096));
            }
        }
    }

    // qcow2 (big-endian): header cluster, L1 table and the first L2 tables it names, refcount table and first block, snapshot table.
    private static void Qcow2(byte[] b, List<Region> regions)
    {
        ulong U64(long at) => at >= 0 && at + 8 <= b.Length ? BinaryPrimitives.ReadUInt64BigEndian(b.AsSpan((int)at)) : 0;
        uint U32(long at) => at >= 0 && at + 4 <= b.Length ? BinaryPrimitives.ReadUInt32BigEndian(b.AsSpan((int)at)) : 0;
        const ulong Mask = 0x00FFFFFFFFFFFE00UL;
        regions.Add(new Region("header", 0, 112));
        regions.Add(new Region("header extensions and backing file name", 112, 4096 - 112));
        long l1 = (long)Math.Min(U64(40), int.MaxValue);
        long l1Size = U32(36);
        regions.Add(new Region("L1 table", l1, Math.Min(l1Size * 8, 64 << 10)));
        for (int i = 0; i < Math.Min(l1Size, 8); i++)
            if ((long)(U64(l1 + 8 * i) & Mask) is var l2 and > 0 and < int.MaxValue) regions.Add(new Region($"L2 table {i}", l2, 4096));
        long table = (long)Math.Min(U64(48), int.MaxValue);
        regions.Add(new Region("refcount table", table, Math.Min(U32(56) * 4096L, 64 << 10)));
        if ((long)(U64(table) & Mask) is var block and > 0 and < int.MaxValue) regions.Add(new Region("refcount block 0", block, 4096));
        if (U32(60) > 0) regions.Add(new Region("snapshot table", (long)Math.Min(U64(64), int.MaxValue), 4096));
    }

    private static void Vdi(byte[] b, List<Region> regions)
    {
        regions.Add(new Region("pre-header and header", 0, 512));
        if (b.Length < 392) return;
        uint offBlocks = BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(340));
        uint cBlocks = BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(384));
        regions.Add(new Region("block map", offBlocks, Math.Min((long)cBlocks * 4, 64 << 10)));
        uint offData = BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(344));
        regions.Add(new Region("first data block", offData, 4096));
    }

    private static void Vhd(byte[] b, List<Region> regions)
    {
        long footer = b.Length - 512;
        regions.Add(new Region("footer", footer, 512));
        if (System.Text.Encoding.ASCII.GetString(b, 0, 8) != "conectix") return; // fixed: the footer is all there is
        regions.Add(new Region("footer copy", 0, 512));
        long header = (long)BinaryPrimitives.ReadUInt64BigEndian(b.AsSpan((int)footer + 16));
        if (header < 512 || header + 1024 > b.Length) return;
        regions.Add(new Region("dynamic disk header", header, 1024));
        long table = (long)BinaryPrimitives.ReadUInt64BigEndian(b.AsSpan((int)header + 16));
        uint entries = BinaryPrimitives.ReadUInt32BigEndian(b.AsSpan((int)header + 28));
        regions.Add(new Region("BAT", table, Math.Min(4L * entries, 64 << 10)));
        for (int i = 0; i < 8; i++)
        {
            var e = b.AsSpan((int)header + 576 + 24 * i, 24);
            if (BinaryPrimitives.ReadUInt32BigEndian(e) == 0) continue;
            regions.Add(new Region($"parent locator {i}", (long)BinaryPrimitives.ReadUInt64BigEndian(e[16..]), Math.Min(BinaryPrimitives.ReadUInt32BigEndian(e[8..]), 4096u)));
        }
        // The sector bitmaps of the first few blocks the BAT points at.
        for (long i = 0; i < Math.Min(entries, 64u); i++)
        {
            long at = table + 4 * i;
            if (at + 4 > b.Length) break;
            uint sector = BinaryPrimitives.ReadUInt32BigEndian(b.AsSpan((int)at));
            if (sector != 0xFFFFFFFF) regions.Add(new Region($"sector bitmap of block {i}", sector * 512L, 512));
        }
    }
}
