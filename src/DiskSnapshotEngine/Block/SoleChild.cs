using System.Buffers.Binary;
using System.Security.Cryptography;

namespace DiskSnapshotEngine.Block;

/// <summary>
/// The one linked clone dse made of a sealed image, recorded in the seal while it is the only one. Merging exactly that
/// clone back into the image needs no unseal: no other image reads through it by dse's doing, and the merge lifts the
/// golden seal. Unknown (the default) once a second clone or snapshot child is made, when the user sealed the image
/// (<c>dse seal</c>), or for a seal written before the record existed: every merge into the image is then refused as
/// before. A copy of the clone made outside dse carries the same id: dse cannot see such copies, as with any parent.
/// </summary>
public readonly record struct SoleChild
{
    private const ulong KeyMask = (1UL << 48) - 1;

    private SoleChild(Guid id, ulong key)
    {
        Id = id;
        Key = key;
    }

    /// <summary>The clone's id when the format stores it whole (VHDX, qcow2); <see cref="Guid.Empty"/> when only <see cref="Key"/> is stored (VDI).</summary>
    public Guid Id { get; }

    /// <summary>48-bit key of the clone's id (<see cref="KeyOf"/>); 0 when unknown.</summary>
    public ulong Key { get; }

    /// <summary>True when the seal names its sole clone.</summary>
    public bool IsKnown => Key != 0;

    /// <summary>Several clones, or none recorded.</summary>
    public static SoleChild Unknown => default;

    /// <summary>The record for a clone with id <paramref name="id"/> (unknown for an image without an id).</summary>
    public static SoleChild Of(Guid id) => id == Guid.Empty ? default : new(id, KeyOf(id));

    /// <summary>The record as a format that has room only for the key stores it (0: unknown).</summary>
    public static SoleChild FromKey(ulong key) => new(Guid.Empty, key & KeyMask);

    /// <summary>True when the recorded clone is the image with id <paramref name="id"/>.</summary>
    public bool Is(Guid id) => IsKnown && id != Guid.Empty && (Id != Guid.Empty ? Id == id : Key == KeyOf(id));

    /// <summary>
    /// The first 48 bits of SHA-256 of the id's bytes, never 0. Hashed rather than truncated: the leading bytes of a
    /// time-based UUID (version 1 or 7) are its timestamp, so two clones made together could share them; a hash
    /// spreads every bit of the id. 48 bits: a false match needs a child that dse did not make whose id collides (2^-48).
    /// </summary>
    public static ulong KeyOf(Guid id)
    {
        Span<byte> raw = stackalloc byte[16];
        id.TryWriteBytes(raw);
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(raw, hash);
        ulong key = BinaryPrimitives.ReadUInt64LittleEndian(hash) & KeyMask;
        return key == 0 ? 1 : key;
    }

    /// <summary>The clone's id, or its key when only that is stored, or "unknown".</summary>
    public override string ToString() => !IsKnown ? "unknown" : Id != Guid.Empty ? Id.ToString() : $"key {Key:x12}";
}
