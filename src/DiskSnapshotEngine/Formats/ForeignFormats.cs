namespace DiskSnapshotEngine.Formats;

/// <summary>
/// Signatures of formats dse does not read, so that such a file is named for what it is (exit Unsupported) instead
/// of being refused as unknown or, under a raw extension, read as a raw disk. Magic numbers as each format's
/// documentation or reference implementation defines them.
/// </summary>
internal static class ForeignFormats
{
    // How to get from each kind of file to an image dse reads: a disk format is converted, a compressed file or an
    // archive holds the image to unpack, a CD image or an encrypted volume is no virtual disk at all.
    private const string Convert = "convert it (for example qemu-img convert -O qcow2, or -O vhdx) and open the result";
    private const string Decompress = "decompress it first (gzip -d, xz -d or zstd -d) and open the disk image it holds";
    private const string Extract = "extract it first (tar -xf; the disks of an OVA are VMDK files, then convert those) and open the disk image it holds";
    private const string Decrypt = "it is an encrypted volume, not a disk image: open it with cryptsetup (cryptsetup open), or give dse the disk image that contains it";
    private const string Iso = "it is a CD/DVD image, not a disk image: attach it to the VM as a CD/DVD drive";

    /// <summary>The name dse gives an ISO 9660 file.</summary>
    public const string IsoName = "an ISO 9660 CD/DVD image";

    private static readonly (string Name, int Offset, byte[] Magic, string Way)[] s_heads =
    {
        ("a VMDK image (VMware sparse extent)", 0, "KDMV"u8.ToArray(), Convert),
        ("a VMDK image (VMware ESXi COWD extent)", 0, "COWD"u8.ToArray(), Convert),
        ("a VMDK descriptor (VMware)", 0, "# Disk DescriptorFile"u8.ToArray(), Convert),
        ("a QED image (QEMU enhanced disk)", 0, "QED\0"u8.ToArray(), Convert),
        ("a Parallels image", 0, "WithoutFreeSpace"u8.ToArray(), Convert),
        ("a Parallels image", 0, "WithouFreSpacExt"u8.ToArray(), Convert),
        ("a Bochs image", 0, "Bochs Virtual HD Image"u8.ToArray(), Convert),
        ("a LUKS encrypted volume", 0, [(byte)'L', (byte)'U', (byte)'K', (byte)'S', 0xBA, 0xBE], Decrypt),
        ("a gzip-compressed file", 0, [0x1F, 0x8B], Decompress),
        ("an xz-compressed file", 0, [0xFD, (byte)'7', (byte)'z', (byte)'X', (byte)'Z', 0], Decompress),
        ("a zstd-compressed file", 0, [0x28, 0xB5, 0x2F, 0xFD], Decompress),
        ("an OVA/tar archive", 257, "ustar"u8.ToArray(), Extract),
    };

    /// <summary>ISO 9660 Primary Volume Descriptor id, at byte 1 of sector 16 (0x8001).</summary>
    public const int IsoOffset = 0x8001;

    /// <summary>The format of <paramref name="head"/> (the file's first bytes) or <paramref name="tail"/> (its last 512), or null.</summary>
    public static string? Identify(ReadOnlySpan<byte> head, ReadOnlySpan<byte> tail)
    {
        foreach (var (name, offset, magic, _) in s_heads)
            if (head.Length >= offset + magic.Length && head.Slice(offset, magic.Length).SequenceEqual(magic)) return name;
        // Apple UDIF: the "koly" trailer is the last 512 bytes.
        if (tail.Length == 512 && tail[..4].SequenceEqual("koly"u8)) return "an Apple disk image (DMG)";
        return null;
    }

    /// <summary>True when <paramref name="atIsoOffset"/> (bytes read at <see cref="IsoOffset"/>) is an ISO 9660 volume descriptor.</summary>
    public static bool IsIso(ReadOnlySpan<byte> atIsoOffset) => atIsoOffset.Length >= 5 && atIsoOffset[..5].SequenceEqual("CD001"u8);

    /// <summary>The refusal's wording: what the file is, and how to get an image dse reads.</summary>
    public static string Describe(string name) =>
        $"the file is {name}, which dse does not read; " +
        (name == IsoName ? Iso : Array.Find(s_heads, h => h.Name == name).Way ?? Convert);
}
