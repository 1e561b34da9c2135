using DiskSnapshotEngine.Block;

namespace DiskSnapshotEngine.Formats.Vhd;

// check --repair: a damaged end footer is rebuilt from its copy at offset 0, a damaged dynamic disk header from the
// copy a relink writes first. A copy at offset 0 that differs from a valid end footer is left as it is (check reports it).
internal sealed partial class VhdLayer : IRepairable
{
    /// <summary>
    /// VHD specification "Hard Disk Footer Format": the footer belongs at the end of the file, where Hyper-V and libvhdi
    /// look for it; one read from its copy at offset 0 is written back there, and a header read from its copy is written
    /// back in place, as the first change of a session does. Content and identity are untouched.
    /// </summary>
    public IReadOnlyList<string> RepairMetadata()
    {
        EnsureWritable("repair");
        var changes = new List<string>();
        if (HeaderRecovered) changes.Add($"dynamic disk header at offset {HeaderOffset}: rewritten from its copy");
        long? footerAt = FooterRecovered ? VhdOpen.FooterRepairOffset(this) : null;
        BeginChange();
        if (footerAt is { } at) changes.Add($"hard disk footer at offset {at} (the end of the file): written back from its copy at offset 0");
        return changes;
    }
}
