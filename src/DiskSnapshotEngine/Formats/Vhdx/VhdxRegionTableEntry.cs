using System.Buffers.Binary;
using System.Text;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Formats.Vhdx;

// A class, not a struct: lists of it then run the framework's precompiled shared code instead of a value-type
// instantiation that every start (dse info) would have to compile.
/// <summary>MS-VHDX 2.2.3.2 Region Table Entry.</summary>
internal sealed record VhdxRegionTableEntry(Guid Guid, long FileOffset, uint Length, bool Required)
{
    public long End => FileOffset + Length;
}
