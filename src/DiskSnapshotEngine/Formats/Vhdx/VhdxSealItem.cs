using System.Buffers.Binary;
using DiskSnapshotEngine.Block;

namespace DiskSnapshotEngine.Formats.Vhdx;

/// <summary>
/// dse's seal mark in a VHDX: a user metadata item (MS-VHDX 2.6.1.2: IsUser = 1 for "user metadata", IsRequired = 0 so
/// that every reader that does not know it may ignore it; qemu and libvhdi do). Its ItemId is
/// <see cref="VhdxConstants.DseSealItem"/>; its value is 8 bytes:
/// <code>
/// 0  uint32  Reasons   (SealReasons: 1 golden, 2 snapshot layer; 0 = unsealed)
/// 4  uint32  Check     (~Reasons: a torn or foreign value is told apart from a seal)
/// </code>
/// The item lives in the metadata region, so setting it goes through the VHDX log like any metadata change, and it
/// never touches the header's DataWriteGuid, which children record as their parent's version.
/// </summary>
internal static class VhdxSealItem
{
    /// <summary>Length of the item's value.</summary>
    public const int Size = 8;

    /// <summary>
    /// The seal a value records. A value that is not a valid mark (wrong length, check mismatch, unknown bits) still
    /// names this engine's item, so it is read as golden: a damaged mark errs on the side of protecting the image.
    /// </summary>
    public static SealReasons Parse(ReadOnlySpan<byte> value)
    {
        if (value.Length != Size) return SealReasons.Golden;
        uint reasons = BinaryPrimitives.ReadUInt32LittleEndian(value);
        uint check = BinaryPrimitives.ReadUInt32LittleEndian(value[4..]);
        const uint Known = (uint)(SealReasons.Golden | SealReasons.Snapshot);
        return check != ~reasons || (reasons & ~Known) != 0 ? SealReasons.Golden : (SealReasons)reasons;
    }

    /// <summary>The item's value for a seal.</summary>
    public static byte[] ToBytes(SealReasons seal)
    {
        var b = new byte[Size];
        BinaryPrimitives.WriteUInt32LittleEndian(b, (uint)seal);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(4), ~(uint)seal);
        return b;
    }
}
