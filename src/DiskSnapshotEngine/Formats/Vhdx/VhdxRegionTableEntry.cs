using System.Buffers.Binary;
using System.Text;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Formats.Vhdx;

/// <summary>MS-VHDX 2.2.3.2 Region Table Entry.</summary>
internal readonly record struct VhdxRegionTableEntry(Guid Guid, long FileOffset, uint Length, bool Required)
{
    public long End => FileOffset + Length;
}
