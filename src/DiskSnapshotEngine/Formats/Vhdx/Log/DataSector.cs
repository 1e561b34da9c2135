using System.Buffers.Binary;

namespace DiskSnapshotEngine.Formats.Vhdx.Log;

// MS-VHDX 2.3.1.4 Data Sector: "data", SequenceHigh (4), Data (4084), SequenceLow (4). The 12 bytes it reuses
// travel in the matching data descriptor (LeadingBytes = bytes 0..8, TrailingBytes = bytes 4092..4096).
internal static class DataSector
{
    public const uint Signature = 0x61746164; // "data"
    public const int DataOffset = 8;
    public const int DataLength = 4084;
    public const int SequenceLowOffset = 4092;

    /// <summary>True when the sector carries the signature and both halves of <paramref name="sequenceNumber"/>.</summary>
    public static bool IsValid(ReadOnlySpan<byte> s, ulong sequenceNumber) =>
        BinaryPrimitives.ReadUInt32LittleEndian(s) == Signature
        && BinaryPrimitives.ReadUInt32LittleEndian(s[4..]) == (uint)(sequenceNumber >> 32)
        && BinaryPrimitives.ReadUInt32LittleEndian(s[SequenceLowOffset..]) == (uint)sequenceNumber;

    /// <summary>Encodes a 4 KiB sector of file content: fills <paramref name="dataSector"/> and returns its descriptor.</summary>
    public static DataDescriptor Encode(ReadOnlySpan<byte> content, ulong fileOffset, ulong sequenceNumber, Span<byte> dataSector)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(dataSector, Signature);
        BinaryPrimitives.WriteUInt32LittleEndian(dataSector[4..], (uint)(sequenceNumber >> 32));
        content.Slice(DataOffset, DataLength).CopyTo(dataSector[DataOffset..]);
        BinaryPrimitives.WriteUInt32LittleEndian(dataSector[SequenceLowOffset..], (uint)sequenceNumber);
        return new DataDescriptor(BinaryPrimitives.ReadUInt32LittleEndian(content[SequenceLowOffset..]),
            BinaryPrimitives.ReadUInt64LittleEndian(content), fileOffset, sequenceNumber);
    }

    /// <summary>Rebuilds the 4 KiB of file content from a data sector and its descriptor.</summary>
    public static byte[] Decode(ReadOnlySpan<byte> dataSector, in DataDescriptor d)
    {
        var content = new byte[VhdxLogLayout.SectorSize];
        BinaryPrimitives.WriteUInt64LittleEndian(content, d.LeadingBytes);
        dataSector.Slice(DataOffset, DataLength).CopyTo(content.AsSpan(DataOffset));
        BinaryPrimitives.WriteUInt32LittleEndian(content.AsSpan(SequenceLowOffset), d.TrailingBytes);
        return content;
    }
}
