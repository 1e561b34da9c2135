using System.Buffers.Binary;
using System.Text;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Formats.Vhdx;

/// <summary>MS-VHDX 2.2.2 Header (4 KiB, two copies at 64 KiB and 128 KiB).</summary>
internal sealed record VhdxHeader(ulong SequenceNumber, Guid FileWriteGuid, Guid DataWriteGuid, Guid LogGuid,
    ushort LogVersion, ushort Version, uint LogLength, ulong LogOffset)
{
    public const uint Signature = 0x64616568; // "head"

    /// <summary>Parses a header; null when its signature or checksum is wrong (the other copy may still be good).</summary>
    public static VhdxHeader? TryParse(ReadOnlySpan<byte> b)
    {
        if (BinaryPrimitives.ReadUInt32LittleEndian(b) != Signature) return null;
        uint stored = BinaryPrimitives.ReadUInt32LittleEndian(b[4..]);
        if (Crc32C.ComputeWithZeroField(b[..VhdxConstants.HeaderSize], 4) != stored) return null;
        return new VhdxHeader(
            BinaryPrimitives.ReadUInt64LittleEndian(b[8..]),
            new Guid(b.Slice(16, 16)), new Guid(b.Slice(32, 16)), new Guid(b.Slice(48, 16)),
            BinaryPrimitives.ReadUInt16LittleEndian(b[64..]), BinaryPrimitives.ReadUInt16LittleEndian(b[66..]),
            BinaryPrimitives.ReadUInt32LittleEndian(b[68..]), BinaryPrimitives.ReadUInt64LittleEndian(b[72..]));
    }

    /// <summary>Serialises into a 4 KiB buffer with a valid checksum.</summary>
    public void Write(Span<byte> b)
    {
        b[..VhdxConstants.HeaderSize].Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(b, Signature);
        BinaryPrimitives.WriteUInt64LittleEndian(b[8..], SequenceNumber);
        FileWriteGuid.TryWriteBytes(b.Slice(16, 16));
        DataWriteGuid.TryWriteBytes(b.Slice(32, 16));
        LogGuid.TryWriteBytes(b.Slice(48, 16));
        BinaryPrimitives.WriteUInt16LittleEndian(b[64..], LogVersion);
        BinaryPrimitives.WriteUInt16LittleEndian(b[66..], Version);
        BinaryPrimitives.WriteUInt32LittleEndian(b[68..], LogLength);
        BinaryPrimitives.WriteUInt64LittleEndian(b[72..], LogOffset);
        BinaryPrimitives.WriteUInt32LittleEndian(b[4..], Crc32C.Compute(b[..VhdxConstants.HeaderSize]));
    }
}
