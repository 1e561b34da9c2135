using System.Buffers.Binary;

namespace DiskSnapshotEngine.Formats.Vhdx.Log;

// MS-VHDX 2.3.1.1 Log Entry Header: the first 64 bytes of a log entry's first 4 KiB sector.
//
//   0 Signature "loge"   4 Checksum   8 EntryLength   12 Tail   16 SequenceNumber (8)
//  24 DescriptorCount    28 Reserved  32 LogGuid (16) 48 FlushedFileOffset (8)   56 LastFileOffset (8)
internal readonly record struct LogEntryHeader(uint Checksum, uint EntryLength, uint Tail, ulong SequenceNumber,
    uint DescriptorCount, Guid LogGuid, ulong FlushedFileOffset, ulong LastFileOffset)
{
    public const uint Signature = 0x65676F6C; // "loge"
    public const int Size = 64;
    public const int ChecksumOffset = 4;

    public static bool HasSignature(ReadOnlySpan<byte> sector) => BinaryPrimitives.ReadUInt32LittleEndian(sector) == Signature;

    public static LogEntryHeader Parse(ReadOnlySpan<byte> b) => new(
        BinaryPrimitives.ReadUInt32LittleEndian(b[4..]),
        BinaryPrimitives.ReadUInt32LittleEndian(b[8..]),
        BinaryPrimitives.ReadUInt32LittleEndian(b[12..]),
        BinaryPrimitives.ReadUInt64LittleEndian(b[16..]),
        BinaryPrimitives.ReadUInt32LittleEndian(b[24..]),
        new Guid(b.Slice(32, 16)),
        BinaryPrimitives.ReadUInt64LittleEndian(b[48..]),
        BinaryPrimitives.ReadUInt64LittleEndian(b[56..]));

    public void WriteTo(Span<byte> b)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(b, Signature);
        BinaryPrimitives.WriteUInt32LittleEndian(b[4..], Checksum);
        BinaryPrimitives.WriteUInt32LittleEndian(b[8..], EntryLength);
        BinaryPrimitives.WriteUInt32LittleEndian(b[12..], Tail);
        BinaryPrimitives.WriteUInt64LittleEndian(b[16..], SequenceNumber);
        BinaryPrimitives.WriteUInt32LittleEndian(b[24..], DescriptorCount);
        BinaryPrimitives.WriteUInt32LittleEndian(b[28..], 0);
        LogGuid.TryWriteBytes(b.Slice(32, 16));
        BinaryPrimitives.WriteUInt64LittleEndian(b[48..], FlushedFileOffset);
        BinaryPrimitives.WriteUInt64LittleEndian(b[56..], LastFileOffset);
    }

    /// <summary>Sectors taken by the header and <paramref name="descriptorCount"/> 32-byte descriptors (2.3.1.1: they share the first sectors).</summary>
    public static long DescriptorSectors(long descriptorCount) =>
        (Size + descriptorCount * LogDescriptor.Size + VhdxLogLayout.SectorSize - 1) / VhdxLogLayout.SectorSize;
}
