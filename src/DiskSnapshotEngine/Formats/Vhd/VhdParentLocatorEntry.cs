using System.Buffers.Binary;

namespace DiskSnapshotEngine.Formats.Vhd;

/// <summary>
/// VHD specification "Parent Locator Entry" (24 bytes, one of eight in the dynamic disk header): where in the file the
/// platform-specific path of the parent is stored.
/// <code>
/// 0 Platform Code   4 Platform Data Space   8 Platform Data Length   12 Reserved   16 Platform Data Offset (8)
/// </code>
/// The spec gives Platform Data Space in 512-byte sectors; Virtual PC and Hyper-V store bytes there (VirtualBox notes
/// the same), so we write bytes, always a multiple of 512, and never rely on the field when reading.
/// </summary>
internal readonly record struct VhdParentLocatorEntry(uint PlatformCode, uint DataSpace, uint DataLength, ulong DataOffset)
{
    public const int Size = 24;

    public bool IsEmpty => PlatformCode == VhdPlatformCode.None;

    public static VhdParentLocatorEntry Read(ReadOnlySpan<byte> s) => new(
        BinaryPrimitives.ReadUInt32BigEndian(s),
        BinaryPrimitives.ReadUInt32BigEndian(s[4..]),
        BinaryPrimitives.ReadUInt32BigEndian(s[8..]),
        BinaryPrimitives.ReadUInt64BigEndian(s[16..]));

    public void Write(Span<byte> d)
    {
        d[..Size].Clear();
        BinaryPrimitives.WriteUInt32BigEndian(d, PlatformCode);
        BinaryPrimitives.WriteUInt32BigEndian(d[4..], DataSpace);
        BinaryPrimitives.WriteUInt32BigEndian(d[8..], DataLength);
        BinaryPrimitives.WriteUInt64BigEndian(d[16..], DataOffset);
    }
}

/// <summary>VHD specification "Platform Code" values of a parent locator entry.</summary>
internal static class VhdPlatformCode
{
    public const uint None = 0;
    /// <summary>"Wi2r" [deprecated]: a relative path, single-byte characters.</summary>
    public const uint Wi2r = 0x57693272;
    /// <summary>"Wi2k" [deprecated]: an absolute path, single-byte characters.</summary>
    public const uint Wi2k = 0x5769326B;
    /// <summary>"W2ru": a Windows relative path, UTF-16 little-endian.</summary>
    public const uint W2ru = 0x57327275;
    /// <summary>"W2ku": a Windows absolute path, UTF-16 little-endian.</summary>
    public const uint W2ku = 0x57326B75;
    /// <summary>"Mac ": a Mac OS alias stored as a blob (not a path: not read).</summary>
    public const uint Mac = 0x4D616320;
    /// <summary>"MacX": a file URL with UTF-8 encoding conforming to RFC 2396.</summary>
    public const uint MacX = 0x4D616358;

    public static string Name(uint code) => code switch
    {
        None => "none",
        Wi2r => "Wi2r",
        Wi2k => "Wi2k",
        W2ru => "W2ru",
        W2ku => "W2ku",
        Mac => "Mac",
        MacX => "MacX",
        _ => $"0x{code:X8}",
    };
}
