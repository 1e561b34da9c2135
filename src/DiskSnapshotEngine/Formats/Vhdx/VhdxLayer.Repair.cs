using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;
using static DiskSnapshotEngine.Formats.Vhdx.VhdxConstants;

namespace DiskSnapshotEngine.Formats.Vhdx;

public sealed partial class VhdxLayer : IRepairable
{
    /// <summary>
    /// MS-VHDX 2.2.2.1: an invalid header copy is replaced by writing both headers from the current one (the usual
    /// update order, so one valid header exists at every instant); MS-VHDX 2.2.3: an invalid region table copy is
    /// rewritten from the valid one. A dirty log was already replayed by the read-write open.
    /// </summary>
    public IReadOnlyList<string> RepairMetadata()
    {
        if (!IsWritable) ThrowHelper.ReadOnly(Path, "repair");
        var changes = new List<string>();
        lock (_sync)
        {
            var buf = new byte[RegionTableSize];
            foreach (var off in new[] { Header1Offset, Header2Offset })
            {
                _file.ReadOrZero(buf.AsSpan(0, HeaderSize), off);
                if (VhdxHeader.TryParse(buf.AsSpan(0, HeaderSize)) is not null) continue;
                UpdateHeaders(_header with { FileWriteGuid = Guid.NewGuid() });
                changes.Add($"header at offset {off}: invalid copy rewritten from the current header");
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
                changes.Add($"region table at offset {tables[1 - good]}: invalid copy rewritten from the one at {tables[good]}");
            }
        }
        return changes;
    }
}
