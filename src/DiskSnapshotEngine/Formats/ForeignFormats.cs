namespace DiskSnapshotEngine.Formats;

/// <summary>
/// Signatures of formats dse does not read, so that such a file is named for what it is (exit Unsupported) instead
/// of being refused as unknown or, under a raw extension, read as a raw disk. Magic numbers as each format's
/// documentation or reference implementation defines them.
/// </summary>
internal static class ForeignFormats
{
    private static readonly (string Name, int Offset, byte[] Magic)[] s_heads =
    {
        ("a VMDK image (VMware sparse extent)", 0, "KDMV"u8.ToArray()),
        ("a VMDK image (VMware ESXi COWD extent)", 0, "COWD"u8.ToArray()),
        ("a VMDK descriptor (VMware)", 0, "# Disk DescriptorFile"u8.ToArray()),
        ("a QED image (QEMU enhanced disk)", 0, "QED\0"u8.ToArray()),
        ("a Parallels image", 0, "WithoutFreeSpace"u8.ToArray()),
        ("a Parallels image", 0, "WithouFreSpacExt"u8.ToArray()),
        ("a Bochs image", 0, "Bochs Virtual HD Image"u8.ToArray()),
        ("a LUKS encrypted volume", 0, [(byte)'L', (byte)'U', (byte)'K', (byte)'S', 0xBA, 0xBE]),
        ("a gzip-compressed file", 0, [0x1F, 0x8B]),
        ("an xz-compressed file", 0, [0xFD, (byte)'7', (byte)'z', (byte)'X', (byte)'Z', 0]),
        ("a zstd-compressed file", 0, [0x28, 0xB5, 0x2F, 0xFD]),
        ("an OVA/tar archive", 257, "ustar"u8.ToArray()),
    };

    /// <summary>ISO 9660 Primary Volume Descriptor id, at byte 1 of sector 16 (0x8001).</summary>
    public const int IsoOffset = 0x8001;

    /// <summary>The format of <paramref name="head"/> (the file's first bytes) or <paramref name="tail"/> (its last 512), or null.</summary>
    public static string? Identify(ReadOnlySpan<byte> head, ReadOnlySpan<byte> tail)
    {
        foreach (var (name, offset, magic) in s_heads)
            if (head.Length >= offset + magic.Length && head.Slice(offset, magic.Length).SequenceEqual(magic)) return name;
        // Apple UDIF: the "koly" trailer is the last 512 bytes.
        if (tail.Length == 512 && tail[..4].SequenceEqual("koly"u8)) return "an Apple disk image (DMG)";
        return null;
    }

    /// <summary>True when <paramref name="atIsoOffset"/> (bytes read at <see cref="IsoOffset"/>) is an ISO 9660 volume descriptor.</summary>
    public static bool IsIso(ReadOnlySpan<byte> atIsoOffset) => atIsoOffset.Length >= 5 && atIsoOffset[..5].SequenceEqual("CD001"u8);

    /// <summary>The refusal's wording: what the file is, and how to get an image dse reads.</summary>
    public static string Describe(string name) =>
        $"the file is {name}, which dse does not read; convert it (for example qemu-img convert -O qcow2, or -O vhdx) and open the result";
}
