using System.Buffers.Binary;
using DiskSnapshotEngine.Block;

namespace DiskSnapshotEngine.Formats;

/// <summary>
/// dse's seal value. The full form is what the VHDX user metadata item and the qcow2 header extension hold:
/// <code>
/// 0  uint32 LE  Reasons   (SealReasons: 1 golden, 2 snapshot layer; 0 = unsealed)
/// 4  uint32 LE  Check     (~Reasons: a torn or foreign value is told apart from a seal)
/// 8  byte[16]   SoleChild (the id of the only linked clone dse made of the image; zeros = several or unknown)
/// </code>
/// Seals written before the sole child was recorded are the first 8 bytes alone: read as "unknown children".
/// The short form is what fits the VDI record's 8 bytes after its magic (see <see cref="Vdi.VdiSealRecord"/>):
/// <code>
/// 0  uint8      Flags     (0x80 | Reasons: the high bit tells it from the old 8-byte value, whose byte 0 is 0-3)
/// 1  uint8      Check     (~Flags)
/// 2  uint48 LE  SoleChild key (SoleChild.KeyOf the clone's id; 0 = several or unknown)
/// </code>
/// An older dse reads either new form as a damaged value, hence golden: it still refuses to change the image.
/// </summary>
internal static class SealValue
{
    /// <summary>Length of the value as seals were written before the sole child was recorded (and of the short form).</summary>
    public const int Size = 8;

    /// <summary>Length of the full form.</summary>
    public const int FullSize = 24;

    private const uint Known = (uint)(SealReasons.Golden | SealReasons.Snapshot);
    private const byte ShortFlag = 0x80;

    /// <summary>
    /// The seal a value records. A value that is not a valid mark (wrong length, check mismatch, unknown bits) still
    /// sits where only dse's mark goes, so it is read as golden: a damaged mark errs on the side of protecting the image.
    /// </summary>
    public static (SealReasons Seal, SoleChild Sole) Parse(ReadOnlySpan<byte> value)
    {
        if (value.Length == Size && (value[0] & ShortFlag) != 0)
        {
            uint flags = value[0] & ~(uint)ShortFlag;
            if (value[1] != (byte)~value[0] || (flags & ~Known) != 0) return (SealReasons.Golden, SoleChild.Unknown);
            ulong key = BinaryPrimitives.ReadUInt64LittleEndian(value) >> 16;
            return flags == 0 ? (SealReasons.None, SoleChild.Unknown) : ((SealReasons)flags, SoleChild.FromKey(key));
        }
        if (value.Length is not (Size or FullSize)) return (SealReasons.Golden, SoleChild.Unknown);
        uint reasons = BinaryPrimitives.ReadUInt32LittleEndian(value);
        uint check = BinaryPrimitives.ReadUInt32LittleEndian(value[4..]);
        if (check != ~reasons || (reasons & ~Known) != 0) return (SealReasons.Golden, SoleChild.Unknown);
        var sole = value.Length == FullSize && reasons != 0 ? SoleChild.Of(new Guid(value.Slice(8, 16))) : SoleChild.Unknown;
        return ((SealReasons)reasons, sole);
    }

    /// <summary>The full form (VHDX, qcow2). A record that holds only a key (read from a VDI) is written as unknown.</summary>
    public static byte[] ToBytes(SealReasons seal, SoleChild sole = default)
    {
        var b = new byte[FullSize];
        BinaryPrimitives.WriteUInt32LittleEndian(b, (uint)seal);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(4), ~(uint)seal);
        if (seal != SealReasons.None && sole.Id != Guid.Empty) sole.Id.TryWriteBytes(b.AsSpan(8));
        return b;
    }

    /// <summary>The short form (VDI): reasons, check and the 48-bit key of the sole child.</summary>
    public static byte[] ToShortBytes(SealReasons seal, SoleChild sole = default)
    {
        ulong key = seal == SealReasons.None ? 0 : sole.Key;
        byte flags = (byte)(ShortFlag | (uint)seal);
        var b = new byte[Size];
        BinaryPrimitives.WriteUInt64LittleEndian(b, key << 16);
        b[0] = flags;
        b[1] = (byte)~flags;
        return b;
    }
}
