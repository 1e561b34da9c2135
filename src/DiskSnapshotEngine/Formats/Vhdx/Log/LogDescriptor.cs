using System.Buffers.Binary;

namespace DiskSnapshotEngine.Formats.Vhdx.Log;

/// <summary>The signature shared by both descriptor kinds (2.3.1.2/2.3.1.3), 32 bytes each.</summary>
internal static class LogDescriptor
{
    public const int Size = 32;
    public static uint SignatureOf(ReadOnlySpan<byte> b) => BinaryPrimitives.ReadUInt32LittleEndian(b);
}
