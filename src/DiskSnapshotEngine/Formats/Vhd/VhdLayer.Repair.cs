using DiskSnapshotEngine.Block;

namespace DiskSnapshotEngine.Formats.Vhd;

// check --repair: a damaged end footer is rebuilt from its copy at offset 0, a damaged dynamic disk header from the
// copy a relink writes first, and a copy at offset 0 that is missing, damaged or stale is rewritten from a valid end
// footer (the spec's authoritative one: its checksum was verified at open).
internal sealed partial class VhdLayer : IRepairable
{
    /// <summary>
    /// VHD specification "Hard Disk Footer Format": the footer belongs at the end of the file, where Hyper-V and libvhdi
    /// look for it; one read from its copy at offset 0 is written back there, and a header read from its copy is written
    /// back in place, as the first change of a session does. A dynamic or differencing disk's copy at offset 0 that is not
    /// the same as a valid footer at the end is rewritten from it: the spec makes the copy a backup of the footer, and
    /// qemu's vpc driver reads the copy rather than the end. That is one 512-byte write over the copy only (no block or
    /// structure may lie there) and the end footer is not written, so a crash leaves the valid end footer in use; content
    /// and identity are untouched. The dynamic disk header at offset 512 shares the copy's 4 KiB page (and a 4Kn disk's
    /// physical sector): its bytes are not changed, but the page cache writes them back with the copy, so a device that
    /// tore that write could damage the header as much as any in-place metadata write. A 511-byte footer (before
    /// Virtual PC 2004) gets no copy written: it stays reported.
    /// </summary>
    public IReadOnlyList<string> RepairMetadata()
    {
        EnsureWritable("repair");
        var changes = new List<string>();
        if (HeaderRecovered) changes.Add($"dynamic disk header at offset {HeaderOffset}: rewritten from its copy");
        long? footerAt = FooterRecovered ? VhdOpen.FooterRepairOffset(this) : null;
        BeginChange();
        if (footerAt is { } at) changes.Add($"hard disk footer at offset {at} (the end of the file): written back from its copy at offset 0");
        if (FooterCopyDiffers && _bat is not null && FooterLength == VhdFooter.Size)
        {
            File.Write(_footer.Raw, 0);
            File.Flush();
            FooterCopyDiffers = false;
            changes.Add($"hard disk footer copy at offset 0: rewritten from the footer at offset {_footerOffset} (the end of the file)");
        }
        return changes;
    }
}
