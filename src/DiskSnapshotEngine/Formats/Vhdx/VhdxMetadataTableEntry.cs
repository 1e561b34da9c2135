using System.Buffers.Binary;
using System.Text;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Formats.Vhdx;

// A class, not a struct: lists of it then run the framework's precompiled shared code instead of a value-type
// instantiation that every start (dse info) would have to compile.
/// <summary>MS-VHDX 2.6.1.2 Metadata Table Entry (Offset is relative to the metadata region).</summary>
internal sealed record VhdxMetadataTableEntry(Guid ItemId, uint Offset, uint Length, bool IsUser, bool IsVirtualDisk, bool IsRequired)
{
    public uint Flags => (IsUser ? 1u : 0) | (IsVirtualDisk ? 2u : 0) | (IsRequired ? 4u : 0);
}
