using System.Buffers.Binary;
using System.Text;

namespace DiskSnapshotEngine.Formats.Vhd;

/// <summary>
/// VHD specification "Dynamic Disk Header Format": 1024 big-endian bytes at the footer's Data Offset of a dynamic or
/// differencing disk. Kept as raw bytes; setters change one field and <see cref="Seal"/> recomputes the checksum.
/// <code>
/// 0  Cookie "cxsparse"   8 Data Offset (8, unused: all ones)   16 Table Offset (8)   24 Header Version
/// 28 Max Table Entries   32 Block Size   36 Checksum   40 Parent Unique ID (16)   56 Parent Time Stamp
/// 60 Reserved   64 Parent Unicode Name (512, UTF-16 big-endian)   576 Parent Locator Entries (8 x 24)   768 Reserved (256)
/// </code>
/// </summary>
internal sealed class VhdDynamicHeader
{
    public const int Size = 1024;
    public const uint Version = 0x00010000;
    public const int ChecksumOffset = 36;
    public const int ParentUnicodeNameOffset = 64;
    public const int ParentUnicodeNameSize = 512;
    public const int LocatorEntriesOffset = 576;
    public const int LocatorCount = 8;

    /// <summary>Default block size of the spec, Hyper-V, Virtual PC, VirtualBox and qemu.</summary>
    public const int DefaultBlockSize = 2 << 20;

    private readonly byte[] _raw;

    private VhdDynamicHeader(byte[] raw) => _raw = raw;

    public static ReadOnlySpan<byte> Cookie => "cxsparse"u8;

    public static VhdDynamicHeader From(ReadOnlySpan<byte> bytes) => new(bytes[..Size].ToArray());

    public ReadOnlySpan<byte> Raw => _raw;

    public bool HasCookie => _raw.AsSpan(0, 8).SequenceEqual(Cookie);
    public ulong TableOffset => BinaryPrimitives.ReadUInt64BigEndian(_raw.AsSpan(16));
    public uint HeaderVersion => U32(24);
    public uint MaxTableEntries => U32(28);
    public uint BlockSize => U32(32);
    public uint Checksum => U32(ChecksumOffset);
    public bool ChecksumValid => VhdFooter.ComputeChecksum(_raw, ChecksumOffset) == Checksum;

    /// <summary>Parent Unique ID as stored; read as a GUID the same way as the footer's Unique Id.</summary>
    public Guid ParentUniqueId
    {
        get => new(_raw.AsSpan(40, 16));
        set => value.TryWriteBytes(_raw.AsSpan(40, 16));
    }

    public uint ParentTimeStamp
    {
        get => U32(56);
        set => BinaryPrimitives.WriteUInt32BigEndian(_raw.AsSpan(56), value);
    }

    /// <summary>Parent Unicode Name: UTF-16 big-endian, up to 256 characters, NUL-terminated when shorter.</summary>
    public string ParentUnicodeName
    {
        get
        {
            var s = _raw.AsSpan(ParentUnicodeNameOffset, ParentUnicodeNameSize);
            int end = 0;
            while (end + 1 < s.Length && (s[end] | s[end + 1]) != 0) end += 2;
            return Encoding.BigEndianUnicode.GetString(s[..end]);
        }
        set
        {
            var s = _raw.AsSpan(ParentUnicodeNameOffset, ParentUnicodeNameSize);
            s.Clear();
            var bytes = Encoding.BigEndianUnicode.GetBytes(value);
            bytes.AsSpan(0, Math.Min(bytes.Length, s.Length) & ~1).CopyTo(s);
        }
    }

    public VhdParentLocatorEntry Locator(int index) =>
        VhdParentLocatorEntry.Read(_raw.AsSpan(LocatorEntriesOffset + VhdParentLocatorEntry.Size * index));

    public void SetLocator(int index, VhdParentLocatorEntry entry) =>
        entry.Write(_raw.AsSpan(LocatorEntriesOffset + VhdParentLocatorEntry.Size * index));

    /// <summary>Recomputes the checksum after field changes.</summary>
    public void Seal() =>
        BinaryPrimitives.WriteUInt32BigEndian(_raw.AsSpan(ChecksumOffset), VhdFooter.ComputeChecksum(_raw, ChecksumOffset));

    public VhdDynamicHeader Clone() => new((byte[])_raw.Clone());

    /// <summary>A new header for a disk of <paramref name="maxTableEntries"/> blocks; parent fields are set by the caller.</summary>
    public static VhdDynamicHeader CreateNew(long tableOffset, uint maxTableEntries, uint blockSize)
    {
        var raw = new byte[Size];
        var s = raw.AsSpan();
        Cookie.CopyTo(s);
        BinaryPrimitives.WriteUInt64BigEndian(s[8..], ulong.MaxValue);
        BinaryPrimitives.WriteUInt64BigEndian(s[16..], (ulong)tableOffset);
        BinaryPrimitives.WriteUInt32BigEndian(s[24..], Version);
        BinaryPrimitives.WriteUInt32BigEndian(s[28..], maxTableEntries);
        BinaryPrimitives.WriteUInt32BigEndian(s[32..], blockSize);
        var h = new VhdDynamicHeader(raw);
        h.Seal();
        return h;
    }

    private uint U32(int off) => BinaryPrimitives.ReadUInt32BigEndian(_raw.AsSpan(off));
}
