using System.Buffers.Binary;

namespace DiskSnapshotEngine.Formats.Vhdx.Log;

// MS-VHDX 2.3.1.2 Zero Descriptor: "zero", Reserved, ZeroLength (8), FileOffset (8), SequenceNumber (8).
internal readonly record struct ZeroDescriptor(ulong ZeroLength, ulong FileOffset, ulong SequenceNumber)
{
    public const uint Signature = 0x6F72657A; // "zero"

    public static ZeroDescriptor Parse(ReadOnlySpan<byte> b) => new(
        BinaryPrimitives.ReadUInt64LittleEndian(b[8..]),
        BinaryPrimitives.ReadUInt64LittleEndian(b[16..]),
        BinaryPrimitives.ReadUInt64LittleEndian(b[24..]));

    public void WriteTo(Span<byte> b)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(b, Signature);
        BinaryPrimitives.WriteUInt32LittleEndian(b[4..], 0);
        BinaryPrimitives.WriteUInt64LittleEndian(b[8..], ZeroLength);
        BinaryPrimitives.WriteUInt64LittleEndian(b[16..], FileOffset);
        BinaryPrimitives.WriteUInt64LittleEndian(b[24..], SequenceNumber);
    }
}
