using DiskSnapshotEngine.Block;

namespace DiskSnapshotEngine.Formats.Vhd;

// check --repair: the structures a VHD keeps twice (the footer and its copy at offset 0, the dynamic disk header and
// the copy a relink writes first) made whole again from the valid one.
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
        if (FooterRecovered) changes.Add("hard disk footer: written back at the end of the file from its copy at offset 0");
        BeginChange();
        return changes;
    }
}
