using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;
using static DiskSnapshotEngine.Formats.Vhdx.VhdxConstants;

namespace DiskSnapshotEngine.Formats.Vhdx;

// check --repair: the copies the spec keeps twice (headers, region tables) made whole again from the valid one.
internal sealed partial class VhdxLayer : IRepairable
{
    /// <summary>
    /// MS-VHDX 2.2.2.1: an invalid header copy is replaced by writing both headers from the current one, in the usual
    /// update order (one valid header exists at every instant). MS-VHDX 2.2.3: an invalid region table copy is
    /// rewritten from the valid one (the valid one is never written). A dirty log was already replayed by the
    /// read-write open. Content, identity and DataWriteGuid are untouched.
    /// </summary>
    public IReadOnlyList<string> RepairMetadata()
    {
        if (!IsWritable) ThrowHelper.ReadOnly(Path, "repair");
        var changes = new List<string>();
        lock (_sync)
        {
            var buf = new byte[RegionTableSize];
            foreach (var (name, off) in new[] { ("header 1", Header1Offset), ("header 2", Header2Offset) })
            {
                _file.ReadOrZero(buf.AsSpan(0, HeaderSize), off);
                if (VhdxHeader.TryParse(buf.AsSpan(0, HeaderSize)) is not null) continue;
                _session.RewriteHeaders();
                changes.Add($"{name} at offset {off}: invalid copy rewritten from the current header");
                break;
            }
            var tables = new[] { RegionTable1Offset, RegionTable2Offset };
            var valid = new bool[2];
            for (int i = 0; i < 2; i++)
            {
                _file.ReadOrZero(buf, tables[i]);
                try { valid[i] = VhdxRegionTable.TryParse(buf, Path, tables[i]) is not null; }
                catch (DiskImageException) { }
            }
            if (valid[0] != valid[1])
            {
                int good = valid[0] ? 0 : 1;
                _file.ReadOrZero(buf, tables[good]);
                _file.Write(buf, tables[1 - good]);
                _file.Flush();
                changes.Add($"region table {2 - good} at offset {tables[1 - good]}: invalid copy rewritten from the one at {tables[good]}");
            }
        }
        return changes;
    }
}
