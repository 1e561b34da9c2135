using System.Buffers.Binary;
using System.Text;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Formats.Vhdx;

/// <summary>MS-VHDX 2.6.1.2 Metadata Table Entry (Offset is relative to the metadata region).</summary>
internal readonly record struct VhdxMetadataTableEntry(Guid ItemId, uint Offset, uint Length, bool IsUser, bool IsVirtualDisk, bool IsRequired)
{
    public uint Flags => (IsUser ? 1u : 0) | (IsVirtualDisk ? 2u : 0) | (IsRequired ? 4u : 0);
}
