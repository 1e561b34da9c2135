using System.Buffers.Binary;
using System.Text;

namespace DiskSnapshotEngine.Formats.Vhd;

/// <summary>
/// VHD specification "Hard Disk Footer Format": 512 big-endian bytes at the end of every VHD (and, for dynamic and
/// differencing disks, a copy at offset 0). Kept as the raw bytes read, so moving it to a new end of the file writes
/// back exactly what was there, unknown and reserved bytes included.
/// <code>
/// 0  Cookie "conectix"   8  Features   12 File Format Version   16 Data Offset (8)   24 Time Stamp
/// 28 Creator Application 32 Creator Version   36 Creator Host OS   40 Original Size (8)   48 Current Size (8)
/// 56 Disk Geometry (4)   60 Disk Type   64 Checksum   68 Unique Id (16)   84 Saved State   85 Reserved (427)
/// </code>
/// </summary>
internal sealed class VhdFooter
{
    public const int Size = 512;

    /// <summary>Footer of images made before Virtual PC 2004: the same fields, one reserved byte shorter.</summary>
    public const int OldSize = 511;

    /// <summary>Features bit 1: "Reserved. This bit must always be set to 1."</summary>
    public const uint FeaturesReserved = 2;

    /// <summary>Features bit 0: a temporary disk, a candidate for deletion on shutdown.</summary>
    public const uint FeaturesTemporary = 1;

    public const uint FormatVersion = 0x00010000;

    /// <summary>Data Offset of a fixed disk (no next structure).</summary>
    public const ulong NoDataOffset = ulong.MaxValue;

    /// <summary>What we write in Creator Application: "dse " (the spec lists vpc, vs, and tools choose their own).</summary>
    public const string Creator = "dse ";

    /// <summary>Creator Host OS "Wi2k" (0x5769326B): the spec knows only Windows and Macintosh; qemu and VirtualBox write it on Linux too.</summary>
    public const uint HostWi2k = 0x5769326B;

    public const int ChecksumOffset = 64;
    public const int DiskTypeOffset = 60;

    private readonly byte[] _raw;

    private VhdFooter(byte[] raw) => _raw = raw;

    public static ReadOnlySpan<byte> Cookie => "conectix"u8;

    /// <summary>True when <paramref name="b"/> starts with the footer cookie.</summary>
    public static bool HasCookie(ReadOnlySpan<byte> b) => b.Length >= 8 && b[..8].SequenceEqual(Cookie);

    /// <summary>Wraps 511 or 512 bytes that start with the cookie (a 511-byte footer gets its missing reserved byte as 0).</summary>
    public static VhdFooter From(ReadOnlySpan<byte> bytes)
    {
        var raw = new byte[Size];
        bytes[..Math.Min(Size, bytes.Length)].CopyTo(raw);
        return new VhdFooter(raw);
    }

    public ReadOnlySpan<byte> Raw => _raw;

    public uint Features => U32(8);
    public uint FileFormatVersion => U32(12);
    public ulong DataOffset => BinaryPrimitives.ReadUInt64BigEndian(_raw.AsSpan(16));
    public uint TimeStamp => U32(24);
    public string CreatorApplication => Encoding.ASCII.GetString(_raw, 28, 4).Replace('\0', ' ');
    public uint CreatorVersion => U32(32);
    public uint CreatorHostOs => U32(36);
    public ulong OriginalSize => BinaryPrimitives.ReadUInt64BigEndian(_raw.AsSpan(40));
    public ulong CurrentSize => BinaryPrimitives.ReadUInt64BigEndian(_raw.AsSpan(48));
    public VhdDiskGeometry Geometry => VhdDiskGeometry.Read(_raw.AsSpan(56));
    public VhdDiskType DiskType => (VhdDiskType)U32(DiskTypeOffset);
    public uint Checksum => U32(ChecksumOffset);

    /// <summary>Unique Id as stored (16 bytes); <see cref="UniqueIdGuid"/> reads them as Windows and VirtualBox do.</summary>
    public ReadOnlySpan<byte> UniqueId => _raw.AsSpan(68, 16);

    /// <summary>
    /// The Unique Id as a GUID the way Hyper-V and VirtualBox read it: the 16 bytes are a GUID structure in memory order
    /// (first three fields little-endian), the same convention as a .NET <see cref="Guid"/> built from bytes.
    /// </summary>
    public Guid UniqueIdGuid => new(UniqueId);

    public bool SavedState => _raw[84] != 0;

    /// <summary>True when the stored checksum is the one's complement of the byte sum without the checksum field.</summary>
    public bool ChecksumValid => ComputeChecksum(_raw, ChecksumOffset) == Checksum;

    /// <summary>The spec's checksum: one's complement of the sum of all bytes except the 4-byte checksum field.</summary>
    public static uint ComputeChecksum(ReadOnlySpan<byte> structure, int checksumOffset)
    {
        uint sum = 0;
        for (int i = 0; i < structure.Length; i++)
            if (i < checksumOffset || i >= checksumOffset + 4) sum += structure[i];
        return ~sum;
    }

    /// <summary>A new footer with the checksum sealed.</summary>
    public static VhdFooter CreateNew(VhdDiskType type, ulong dataOffset, long size, VhdDiskGeometry geometry, Guid uniqueId, DateTime now)
    {
        var raw = new byte[Size];
        var s = raw.AsSpan();
        Cookie.CopyTo(s);
        BinaryPrimitives.WriteUInt32BigEndian(s[8..], FeaturesReserved);
        BinaryPrimitives.WriteUInt32BigEndian(s[12..], FormatVersion);
        BinaryPrimitives.WriteUInt64BigEndian(s[16..], dataOffset);
        BinaryPrimitives.WriteUInt32BigEndian(s[24..], VhdTimeStamp.From(now));
        Encoding.ASCII.GetBytes(Creator, s[28..32]);
        BinaryPrimitives.WriteUInt32BigEndian(s[32..], 0x00010000);
        BinaryPrimitives.WriteUInt32BigEndian(s[36..], HostWi2k);
        BinaryPrimitives.WriteUInt64BigEndian(s[40..], (ulong)size);
        BinaryPrimitives.WriteUInt64BigEndian(s[48..], (ulong)size);
        geometry.Write(s[56..]);
        BinaryPrimitives.WriteUInt32BigEndian(s[60..], (uint)type);
        uniqueId.TryWriteBytes(s.Slice(68, 16));
        BinaryPrimitives.WriteUInt32BigEndian(s[ChecksumOffset..], ComputeChecksum(s, ChecksumOffset));
        return new VhdFooter(raw);
    }

    /// <summary>This footer with another Unique Id, the checksum sealed again.</summary>
    public VhdFooter WithUniqueId(Guid id)
    {
        var raw = (byte[])_raw.Clone();
        id.TryWriteBytes(raw.AsSpan(68, 16));
        BinaryPrimitives.WriteUInt32BigEndian(raw.AsSpan(ChecksumOffset), ComputeChecksum(raw, ChecksumOffset));
        return new VhdFooter(raw);
    }

    private uint U32(int off) => BinaryPrimitives.ReadUInt32BigEndian(_raw.AsSpan(off));
}

/// <summary>VHD specification "Disk Type" field values.</summary>
internal enum VhdDiskType : uint
{
    None = 0,
    Fixed = 2,
    Dynamic = 3,
    Differencing = 4,
}

/// <summary>VHD time stamps: seconds since January 1, 2000 12:00:00 AM UTC, as an unsigned 32-bit number.</summary>
internal static class VhdTimeStamp
{
    private static readonly DateTime s_epoch = new(2000, 1, 1, 0, 0, 0, DateTimeKind.Utc);

    public static uint From(DateTime time)
    {
        double seconds = (time.ToUniversalTime() - s_epoch).TotalSeconds;
        return seconds <= 0 ? 0 : seconds >= uint.MaxValue ? uint.MaxValue : (uint)seconds;
    }

    public static DateTime ToDateTime(uint stamp) => s_epoch.AddSeconds(stamp);

    public static string Describe(uint stamp) => $"{ToDateTime(stamp):yyyy-MM-dd HH:mm:ss} UTC";
}
