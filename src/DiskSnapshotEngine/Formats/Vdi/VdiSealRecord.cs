using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Formats.Vdi;

/// <summary>
/// dse's seal mark in a VDI: 16 bytes at file offset 472, right after VDIHEADER1PLUS and inside the first 512-byte sector.
/// <code>
/// 472  char[8]  "dse-seal"
/// 480  byte[8]  SealValue short form (flags, ~flags, 48-bit key of the sole linked clone); older records hold (reasons, ~reasons)
/// </code>
/// The record stays 16 bytes, the size proven safe with VirtualBox and qemu, so the sole child's 16-byte uuidCreate
/// does not fit beside the reasons: a 48-bit hash of it (<see cref="SoleChild.KeyOf"/>) is stored instead. The magic
/// is kept so that an older dse reads the new value as a damaged seal, which it treats as golden.
/// Why there (VirtualBox VDI.cpp / VDICore.h, qemu block/vdi.c): VirtualBox refuses an image whose fFlags carry any
/// bit it does not know (vdiValidateHeader checks them against VD_VDI_IMAGE_FLAGS_MASK), so no flag can be borrowed;
/// szComment is the user's free text, shown and settable by VirtualBox, so a mark there could be lost or overwritten;
/// u32Dummy is a header field older VirtualBox versions gave a meaning. Bytes 472-511 belong to no VirtualBox structure:
/// VirtualBox reads and rewrites only the pre-header and VDIHEADER1PLUS (72 + 400 = 472 bytes) and puts the blocks
/// array at offBlocks (1 MiB aligned when it creates an image). qemu reads and rewrites the whole first sector as its
/// VdiHeader, whose unused2 field covers these bytes, so it carries them over unchanged. Both open the image as before.
/// The record exists only where those bytes are free: a version 1 header of at most 400 bytes and a blocks array at
/// 512 or later (every image VirtualBox and qemu make).
/// </summary>
internal static class VdiSealRecord
{
    public const int Offset = VdiPreHeader.Size + VdiHeader.Header1PlusSize;
    public const int Size = 16;
    private static ReadOnlySpan<byte> Magic => "dse-seal"u8;

    /// <summary>True when bytes [472, 488) of the file belong to no structure of this image.</summary>
    public static bool HasRoom(VdiHeader header) =>
        !header.IsVersion0 && header.CbHeader <= VdiHeader.Header1PlusSize && header.OffBlocks >= 512 && header.OffData >= 512;

    /// <summary>The seal the file records (none when the bytes are not a dse record). A damaged record reads as golden.</summary>
    public static (SealReasons Seal, SoleChild Sole) Read(IImageFile file, VdiHeader header)
    {
        if (!HasRoom(header)) return (SealReasons.None, SoleChild.Unknown);
        Span<byte> b = stackalloc byte[Size];
        file.ReadOrZero(b, Offset);
        if (!b[..8].SequenceEqual(Magic)) return (SealReasons.None, SoleChild.Unknown);
        return SealValue.Parse(b[8..]);
    }

    /// <summary>Writes the record (one 16-byte write inside one sector: a power loss leaves the old or the new record).</summary>
    public static void Write(IImageFile file, SealReasons seal, SoleChild sole)
    {
        Span<byte> b = stackalloc byte[Size];
        Magic.CopyTo(b);
        SealValue.ToShortBytes(seal, sole).CopyTo(b[8..]);
        file.Write(b, Offset);
    }
}
