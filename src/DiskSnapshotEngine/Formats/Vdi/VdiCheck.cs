using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;

namespace DiskSnapshotEngine.Formats.Vdi;

/// <summary>
/// Structural check of one VDI file (VDICore.h): the header facts other readers rely on, every blocks-array entry
/// (range, shared blocks), cBlocksAllocated against the blocks the map uses, and blocks no entry uses (leaks).
/// Streams the map with a bounded buffer; never writes.
/// </summary>
internal static class VdiCheck
{
    public static CheckReport Run(VdiLayer layer)
    {
        var report = new CheckReport();
        string path = layer.Path;
        var h = layer.Header;
        CheckHeader(layer, report);
        uint cBlocks = h.CBlocks;
        var used = new System.Collections.BitArray((int)Math.Min(cBlocks, (uint)int.MaxValue));
        long referenced = 0, free = 0;
        long fileLength = layer.File.Length;
        long slotsInFile = fileLength > h.OffData ? (fileLength - h.OffData) / layer.Stride : 0;
        try
        {
            foreach (var (index, entry) in layer.Map.Scan())
            {
                if (entry == VdiBlockMap.Free || entry == VdiBlockMap.Zero)
                {
                    free++;
                    continue;
                }
                long at = layer.Map.EntryOffset(index);
                if (entry >= cBlocks)
                {
                    report.Add(CheckSeverity.Error, path, "blocks array", at, $"entry {index} points at block {entry}, outside the {cBlocks} blocks of the image");
                    continue;
                }
                if (used[(int)entry])
                {
                    report.Add(CheckSeverity.Error, path, "blocks array", at, $"entry {index} points at block {entry}, which another entry already uses");
                    continue;
                }
                used[(int)entry] = true;
                referenced++;
                long off = h.OffData + entry * layer.Stride;
                if (off + layer.Stride > fileLength)
                    report.Add(CheckSeverity.Error, path, "blocks array", at, $"entry {index} points at block {entry} (file offset {off}), beyond the end of the file at {fileLength}");
            }
        }
        catch (DiskImageException e)
        {
            report.Add(CheckSeverity.Error, path, "blocks array", e.FileOffset, e.Detail);
            return report;
        }

        if (layer.VdiType == VdiImageType.Fixed && free > 0)
            report.Add(CheckSeverity.Warning, path, "blocks array", h.OffBlocks, $"a fixed image has {free} unallocated blocks");
        if (referenced > h.CBlocksAllocated)
            report.Add(CheckSeverity.Error, path, "VDIHEADER1", h.CBlocksAllocatedOffset,
                $"cBlocksAllocated {h.CBlocksAllocated} is lower than the {referenced} blocks the map uses: QEMU and VirtualBox would allocate their next block over a used one (dse writes after the end of the file)");
        else if (referenced < h.CBlocksAllocated)
            report.Add(CheckSeverity.Leak, path, "VDIHEADER1", h.CBlocksAllocatedOffset,
                $"cBlocksAllocated {h.CBlocksAllocated} counts {h.CBlocksAllocated - referenced} blocks no map entry uses (reclaimed by compact)");
        long unreferencedInFile = 0;
        for (long i = 0; i < Math.Min(slotsInFile, used.Length); i++)
            if (!used[(int)i]) unreferencedInFile++;
        if (unreferencedInFile > 0 && layer.VdiType != VdiImageType.Fixed)
            report.Add(CheckSeverity.Leak, path, "data blocks", h.OffData,
                $"{unreferencedInFile} blocks in the file are not used by any map entry (reclaimed by compact)");
        return report;
    }

    /// <summary>Header facts that open tolerates (the image reads correctly) but other readers may not.</summary>
    private static void CheckHeader(VdiLayer layer, CheckReport report)
    {
        var h = layer.Header;
        string path = layer.Path;
        string s = h.IsVersion0 ? "VDIHEADER0" : "VDIHEADER1";
        if (h.CbDisk % 512 != 0)
            report.Add(CheckSeverity.Warning, path, s, null, $"cbDisk {h.CbDisk} is not a whole number of 512-byte sectors");
        if (h.LegacyGeometry.SectorSize is not (0 or 512))
            report.Add(CheckSeverity.Warning, path, s, null, $"LegacyGeometry.cbSector is {h.LegacyGeometry.SectorSize}; VirtualBox and qemu expect 512");
        if ((h.CbBlock & (h.CbBlock - 1)) != 0)
            report.Add(CheckSeverity.Warning, path, s, null, $"cbBlock {h.CbBlock} is not a power of two (VirtualBox expects one)");
        if (layer.IsDiffLike && !h.IsVersion0 && h.UuidParentModify == Guid.Empty)
            report.Add(CheckSeverity.Warning, path, s, 440, "uuidParentModify is empty: a change of the parent cannot be detected");
        if (!layer.IsDiffLike && h.UuidLinkage != Guid.Empty)
            report.Add(CheckSeverity.Warning, path, s, null, $"a base image carries a uuidLinkage {{{h.UuidLinkage}}} (ignored)");
        if (h.UuidCreate == Guid.Empty)
            report.Add(CheckSeverity.Warning, path, s, null, "uuidCreate is empty: children cannot link to this image");
    }
}
