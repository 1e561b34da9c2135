using System.Buffers.Binary;
using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;
using static DiskSnapshotEngine.Formats.Vhdx.VhdxConstants;

namespace DiskSnapshotEngine.Formats.Vhdx;

/// <summary>
/// Structural check of one VHDX file: both headers and region tables, every BAT entry (state, range, overlap),
/// sector-bitmap consistency, and space no entry uses (leaks). Reads the BAT page by page; never writes.
/// </summary>
internal static class VhdxCheck
{
    public static CheckReport Run(VhdxLayer layer)
    {
        var report = new CheckReport();
        var file = layer.File;
        string path = layer.Path;

        // Both headers should be valid (one bad copy is survivable, so it is a warning).
        var buf = new byte[RegionTableSize];
        foreach (var (name, off) in new[] { ("header 1", Header1Offset), ("header 2", Header2Offset) })
        {
            file.ReadOrZero(buf.AsSpan(0, HeaderSize), off);
            if (VhdxHeader.TryParse(buf.AsSpan(0, HeaderSize)) is null)
                report.Add(CheckSeverity.Warning, path, name, off, "invalid signature or CRC-32C checksum (the other header is in use)");
        }
        foreach (var (name, off) in new[] { ("region table 1", RegionTable1Offset), ("region table 2", RegionTable2Offset) })
        {
            file.ReadOrZero(buf, off);
            VhdxRegionTable? t = null;
            try { t = VhdxRegionTable.TryParse(buf, path, off); }
            catch (DiskImageException) { }
            if (t is null) report.Add(CheckSeverity.Warning, path, name, off, "invalid signature or CRC-32C checksum");
        }
        if (layer.Header.LogGuid != Guid.Empty && !layer.InWriteSession) // our own open session sets it until close
            report.Add(CheckSeverity.Warning, path, "header", Header1Offset, $"LogGuid {{{layer.Header.LogGuid}}} is set: the image was not closed cleanly");

        // Every allocated block: inside the file, outside the header area and regions, not shared.
        var used = new Dictionary<long, long>(); // 1 MiB unit -> BAT index that uses it
        var bat = layer.BatRegion;
        long entries = layer.BatEntryCount;
        long ratio = layer.ChunkRatio;
        long blockSize = layer.BlockSize;
        long fileLength = file.Length;
        byte[] sector = Array.Empty<byte>();
        long sectorAt = -1;
        for (long index = 0; index < entries; index++)
        {
            long at = bat.FileOffset + index * 8;
            if (SpanHelpers.AlignDown(at, 4096) != sectorAt)
            {
                sectorAt = SpanHelpers.AlignDown(at, 4096);
                sector = layer.RawSector(sectorAt, "BAT"); // one copy per 512 entries
            }
            var e = new VhdxBatEntry(BinaryPrimitives.ReadUInt64LittleEndian(sector.AsSpan((int)(at - sectorAt))));
            bool isBitmap = index % (ratio + 1) == ratio;
            long length;
            string what;
            if (isBitmap)
            {
                long chunk = index / (ratio + 1);
                what = $"sector bitmap block {chunk}";
                if (e.State == VhdxBatEntry.SbNotPresent) continue;
                if (e.State != VhdxBatEntry.SbPresent)
                {
                    report.Add(CheckSeverity.Error, path, "BAT entry", at, $"{what} has invalid state {e.State}");
                    continue;
                }
                if (!layer.HasParent)
                    report.Add(CheckSeverity.Warning, path, "BAT entry", at, $"{what} is present in a file without a parent");
                length = SectorBitmapBlockSize;
            }
            else
            {
                long block = index - index / (ratio + 1);
                if (block >= layer.PayloadBlocks) continue;
                what = $"payload block {block}";
                if (e.State is VhdxBatEntry.NotPresent or VhdxBatEntry.Undefined or VhdxBatEntry.Zero or VhdxBatEntry.Unmapped) continue;
                if (e.State is not (VhdxBatEntry.FullyPresent or VhdxBatEntry.PartiallyPresent))
                {
                    report.Add(CheckSeverity.Error, path, "BAT entry", at, $"{what} has {VhdxBatEntry.StateName(e.State)}");
                    continue;
                }
                if (e.State == VhdxBatEntry.PartiallyPresent)
                {
                    if (!layer.HasParent)
                        report.Add(CheckSeverity.Error, path, "BAT entry", at, $"{what} is PAYLOAD_BLOCK_PARTIALLY_PRESENT in a file without a parent");
                    long chunk = block / ratio;
                    long sbAt = bat.FileOffset + (chunk * (ratio + 1) + ratio) * 8;
                    var sb = new VhdxBatEntry(BinaryPrimitives.ReadUInt64LittleEndian(layer.RawSector(SpanHelpers.AlignDown(sbAt, 4096), "BAT").AsSpan((int)(sbAt % 4096))));
                    if (sb.State != VhdxBatEntry.SbPresent)
                        report.Add(CheckSeverity.Error, path, "BAT entry", at, $"{what} is partially present but sector bitmap block {chunk} is not present");
                }
                length = Math.Min(blockSize, layer.VirtualSize - block * blockSize);
            }
            long off = e.FileOffset;
            if (off < HeaderAreaSize)
            {
                report.Add(CheckSeverity.Error, path, "BAT entry", at, $"{what} at file offset {off} lies inside the header area");
                continue;
            }
            if (off + length > fileLength)
            {
                report.Add(CheckSeverity.Error, path, "BAT entry", at, $"{what} at file offset {off} (+{length}) lies past the end of the file ({fileLength} bytes)");
                continue;
            }
            foreach (var (rname, r) in new[] { ("BAT region", layer.BatRegion), ("metadata region", layer.MetadataRegion), ("log", layer.LogRegion) })
                if (off < r.FileOffset + r.Length && r.FileOffset < off + length)
                    report.Add(CheckSeverity.Error, path, "BAT entry", at, $"{what} at file offset {off} overlaps the {rname}");
            // Writers allocate whole blocks even for the partial last block: the whole allocation is in use.
            long allocated = Math.Max(length, Math.Min(isBitmap ? SectorBitmapBlockSize : blockSize, fileLength - off));
            for (long unit = off / MiB; unit < SpanHelpers.AlignUp(off + allocated, MiB) / MiB; unit++)
            {
                if (used.TryGetValue(unit, out long other))
                {
                    report.Add(CheckSeverity.Error, path, "BAT entry", at, $"{what} at file offset {off} overlaps the block of BAT entry {other}");
                    break;
                }
                used[unit] = index;
            }
        }

        // Leaks: 1 MiB units past the header area that no entry or region uses (a BAT moved to the end by a resize
        // leaves its old region among the blocks).
        long dataStart = HeaderAreaSize;
        long leakStart = -1;
        long lastUnit = SpanHelpers.AlignUp(fileLength, MiB) / MiB;
        for (long unit = dataStart / MiB; unit <= lastUnit; unit++)
        {
            bool free = unit < lastUnit && !used.ContainsKey(unit) && !InRegion(layer, unit * MiB);
            if (free && leakStart < 0) leakStart = unit;
            if (!free && leakStart >= 0)
            {
                long s = leakStart * MiB, e = Math.Min(fileLength, unit * MiB);
                report.Add(CheckSeverity.Leak, path, "payload area", s, $"{e - s} bytes no BAT entry uses");
                leakStart = -1;
            }
        }
        return report;
    }

    // Every region-table entry is in use, those dse does not know included (MS-VHDX 2.2.3.2 keeps them), and the log.
    private static bool InRegion(VhdxLayer layer, long off) =>
        layer.Regions.Append(layer.LogRegion).Any(r => off >= r.FileOffset && off < r.End);
}
