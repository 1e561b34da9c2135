using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Formats.Vhd;

/// <summary>
/// <c>check</c> for a VHD: what the open tolerates (the image reads correctly) but other readers may not, every BAT
/// entry (inside the file, clear of metadata, no two blocks overlapping), and the space no block or structure uses.
/// Never writes; memory grows with the allocated blocks only (4 bytes and a little more each).
/// </summary>
internal static class VhdCheck
{
    // Gaps below this are the 4 KiB alignment of block data, not lost space.
    private const long Padding = 4096;

    // Creator applications for which qemu takes the size from Current Size rather than from the geometry.
    private static readonly string[] s_qemuCurrentSize = { "win ", "qem2", "d2v ", "CTXS", "tap " };

    public static CheckReport Run(VhdLayer layer)
    {
        var report = new CheckReport();
        string path = layer.Path;
        var f = layer.Footer;
        long footerAt = layer.FooterRecovered ? 0 : layer.FooterOffset;
        const string Footer = "hard disk footer";
        if (layer.FooterRecovered)
            report.Add(CheckSeverity.Warning, path, Footer, layer.File.Length, "the end of the file holds no valid footer; its copy at offset 0 was used (the next write puts it back)");
        else if (layer.FooterCopyDiffers)
            report.Add(CheckSeverity.Warning, path, Footer, 0, "the footer copy at offset 0 is missing, damaged or not the same as the footer (qemu reads the copy)");
        if (layer.FooterLength == VhdFooter.OldSize)
            report.Add(CheckSeverity.Warning, path, Footer, footerAt, "a 511-byte footer (Virtual PC before 2004): most readers expect 512 bytes");
        if (f.SavedState)
            report.Add(CheckSeverity.Warning, path, Footer, footerAt + 84, "Saved State is set: a virtual machine was saved with this disk attached");
        long size = (long)f.CurrentSize;
        if (size > VhdDriver.MaxDynamicSize)
            report.Add(CheckSeverity.Warning, path, Footer, footerAt + 48, $"Current Size {size} is above the spec's 2040 GB: Hyper-V and qemu do not open it");
        var g = f.Geometry;
        if (g != VhdDiskGeometry.Maximum && g.Sectors * 512 != size && !s_qemuCurrentSize.Contains(f.CreatorApplication))
            report.Add(CheckSeverity.Warning, path, Footer, footerAt + 56,
                $"Disk Geometry {g} covers {g.Sectors * 512} bytes, not the Current Size {size}: qemu reads a disk of that size (Creator Application \"{f.CreatorApplication}\")");
        if (layer.Header is null)
        {
            long gap = layer.FooterOffset - size;
            if (gap > 0)
                report.Add(CheckSeverity.Warning, path, Footer, layer.FooterOffset, $"{gap} bytes lie between the disk data and the footer (readers expect the footer right after Current Size bytes)");
            return report;
        }
        if (layer.HeaderRecovered)
            report.Add(CheckSeverity.Warning, path, "dynamic disk header", layer.HeaderOffset,
                "the header was torn by an interrupted relink; its copy beside the parent locators was used (the next write puts it back)");
        if (layer.IsDifferencing && layer.ParentLink is { CandidatePaths.Count: 0 })
            report.Add(CheckSeverity.Warning, path, "parent locator", layer.HeaderOffset + VhdDynamicHeader.LocatorEntriesOffset,
                "no parent locator or Parent Unicode Name gives a path usable here: the parent can only be given by hand");
        CheckBlocks(layer, report);
        return report;
    }

    private static void CheckBlocks(VhdLayer layer, CheckReport report)
    {
        string path = layer.Path;
        var bat = layer.Bat!;
        long blocks = (layer.VirtualSize + layer.BlockSize - 1) / layer.BlockSize;
        // Length: what must be there; Slot: the space the structure owns (a last block is allocated whole, as qemu does).
        var used = new List<(long Offset, long Length, long Slot, string What)>();
        foreach (var r in layer.Metadata)
        {
            long aligned = SpanHelpers.AlignUp(r.Length, 512);
            used.Add((r.Offset, aligned, aligned, r.Name));
        }
        foreach (var l in layer.Locators)
        {
            // Our own locators reserve whole regions (Platform Data Space in bytes): the rest of a region is not lost space.
            uint space = l.Entry.DataSpace;
            if (space % 512 == 0 && space >= l.Entry.DataLength && space <= VhdParentLocators.MaxDataLength)
                used.Add(((long)l.Entry.DataOffset, space, space, "parent locator space"));
        }
        try
        {
            foreach (var (block, entry) in bat.Scan())
            {
                if (entry == VhdBat.Unused) continue;
                if (block >= blocks)
                {
                    report.Add(CheckSeverity.Warning, path, "BAT", bat.EntryOffset(block), $"entry {block} maps a block past the end of the disk (ignored)");
                    continue;
                }
                try
                {
                    long off = layer.BlockOffset(block, entry);
                    long whole = Math.Min(layer.BitmapBytes + (long)layer.BlockSize, layer.DataLimit - off);
                    used.Add((off, layer.BitmapBytes + layer.BlockLength(block), whole, $"block {block}"));
                }
                catch (DiskImageException e)
                {
                    report.Add(CheckSeverity.Error, path, e.Structure ?? "BAT", e.FileOffset, e.Detail);
                }
            }
        }
        catch (DiskImageException e)
        {
            report.Add(CheckSeverity.Error, path, "BAT", e.FileOffset, e.Detail);
            return;
        }

        used.Sort((a, b) => a.Offset.CompareTo(b.Offset));
        long needed = 0, owned = 0, leaked = 0;
        string previous = "";
        foreach (var u in used)
        {
            bool isBlock = u.What.StartsWith("block", StringComparison.Ordinal);
            if (u.Offset < needed && isBlock && previous.StartsWith("block", StringComparison.Ordinal))
                report.Add(CheckSeverity.Error, path, "BAT", null, $"{u.What} at file offset {u.Offset} overlaps {previous}");
            else if (u.Offset - owned >= Padding) leaked += u.Offset - owned;
            if (u.Offset + u.Length > needed)
            {
                needed = u.Offset + u.Length;
                previous = u.What;
            }
            owned = Math.Max(owned, u.Offset + u.Slot);
        }
        if (!layer.FooterRecovered && layer.FooterOffset - owned >= Padding) leaked += layer.FooterOffset - owned;
        if (leaked > 0)
            report.Add(CheckSeverity.Leak, path, "data blocks", null, $"{leaked} bytes of the file are used by no block or structure (reclaimed by compact)");
    }
}
