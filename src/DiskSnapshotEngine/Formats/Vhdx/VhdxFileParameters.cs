using System.Buffers.Binary;
using System.Text;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Formats.Vhdx;

/// <summary>MS-VHDX 2.6.2.1 File Parameters.</summary>
internal readonly record struct VhdxFileParameters(uint BlockSize, bool LeaveBlockAllocated, bool HasParent)
{
    public void Write(Span<byte> b)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(b, BlockSize);
        BinaryPrimitives.WriteUInt32LittleEndian(b[4..], (LeaveBlockAllocated ? 1u : 0) | (HasParent ? 2u : 0));
    }

    public static VhdxFileParameters Parse(ReadOnlySpan<byte> b) =>
        new(BinaryPrimitives.ReadUInt32LittleEndian(b), (b[4] & 1) != 0, (b[4] & 2) != 0);
}
