using System.Buffers.Binary;

namespace DiskSnapshotEngine.Formats.Vhdx.Log;

// MS-VHDX 2.3.1.3 Data Descriptor: "desc", TrailingBytes (4), LeadingBytes (8), FileOffset (8), SequenceNumber (8).
// Leading/TrailingBytes hold the first 8 and last 4 bytes of the sector, which its data sector uses for its own fields.
internal readonly record struct DataDescriptor(uint TrailingBytes, ulong LeadingBytes, ulong FileOffset, ulong SequenceNumber)
{
    public const uint Signature = 0x63736564; // "desc"

    public static DataDescriptor Parse(ReadOnlySpan<byte> b) => new(
        BinaryPrimitives.ReadUInt32LittleEndian(b[4..]),
        BinaryPrimitives.ReadUInt64LittleEndian(b[8..]),
        BinaryPrimitives.ReadUInt64LittleEndian(b[16..]),
        BinaryPrimitives.ReadUInt64LittleEndian(b[24..]));

    public void WriteTo(Span<byte> b)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(b, Signature);
        BinaryPrimitives.WriteUInt32LittleEndian(b[4..], TrailingBytes);
        BinaryPrimitives.WriteUInt64LittleEndian(b[8..], LeadingBytes);
        BinaryPrimitives.WriteUInt64LittleEndian(b[16..], FileOffset);
        BinaryPrimitives.WriteUInt64LittleEndian(b[24..], SequenceNumber);
    }
}
