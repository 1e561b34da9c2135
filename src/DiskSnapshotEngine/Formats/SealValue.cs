using System.Buffers.Binary;
using DiskSnapshotEngine.Block;

namespace DiskSnapshotEngine.Formats;

/// <summary>
/// dse's 8-byte seal value, the same in every format that carries it (the VHDX user metadata item, the qcow2 header
/// extension, the VDI record after its magic):
/// <code>
/// 0  uint32 LE  Reasons   (SealReasons: 1 golden, 2 snapshot layer; 0 = unsealed)
/// 4  uint32 LE  Check     (~Reasons: a torn or foreign value is told apart from a seal)
/// </code>
/// </summary>
internal static class SealValue
{
    /// <summary>Length of the value.</summary>
    public const int Size = 8;

    /// <summary>
    /// The seal a value records. A value that is not a valid mark (wrong length, check mismatch, unknown bits) still
    /// sits where only dse's mark goes, so it is read as golden: a damaged mark errs on the side of protecting the image.
    /// </summary>
    public static SealReasons Parse(ReadOnlySpan<byte> value)
    {
        if (value.Length != Size) return SealReasons.Golden;
        uint reasons = BinaryPrimitives.ReadUInt32LittleEndian(value);
        uint check = BinaryPrimitives.ReadUInt32LittleEndian(value[4..]);
        const uint Known = (uint)(SealReasons.Golden | SealReasons.Snapshot);
        return check != ~reasons || (reasons & ~Known) != 0 ? SealReasons.Golden : (SealReasons)reasons;
    }

    /// <summary>The value for a seal.</summary>
    public static byte[] ToBytes(SealReasons seal)
    {
        var b = new byte[Size];
        BinaryPrimitives.WriteUInt32LittleEndian(b, (uint)seal);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(4), ~(uint)seal);
        return b;
    }
}
