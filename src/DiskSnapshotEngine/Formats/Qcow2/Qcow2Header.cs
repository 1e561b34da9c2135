using System.Buffers.Binary;
using DiskSnapshotEngine.Errors;

namespace DiskSnapshotEngine.Formats.Qcow2;

/// <summary>
/// qcow2.txt "Header": the fixed fields, big-endian, kept as the raw bytes read (72 bytes in version 2,
/// header_length in version 3) so that a rewrite patches only the fields we change and keeps any additional
/// field we do not know byte for byte.
/// <code>
/// 0 magic  4 version  8 backing_file_offset  16 backing_file_size  20 cluster_bits  24 size  32 crypt_method
/// 36 l1_size  40 l1_table_offset  48 refcount_table_offset  56 refcount_table_clusters  60 nb_snapshots
/// 64 snapshots_offset | v3: 72 incompatible_features  80 compatible_features  88 autoclear_features
/// 96 refcount_order  100 header_length  104 compression_type (when header_length > 104)
/// </code>
/// </summary>
internal sealed class Qcow2Header
{
    public const uint Magic = 0x514649FB; // "QFI\xfb"
    public const int Version2Length = 72;
    public const int Version3MinLength = 104;
    /// <summary>What we write: the v3 fields plus compression_type, padded to a multiple of 8 (as qemu-img does).</summary>
    public const int CreatedLength = 112;
    public const int MinClusterBits = 9;
    /// <summary>qemu's implementation limit (2 MiB clusters); larger images do not open in qemu either.</summary>
    public const int MaxClusterBits = 21;
    public const int MaxBackingFileSize = 1023;

    // incompatible_features bits
    public const ulong DirtyBit = 1UL << 0;
    public const ulong CorruptBit = 1UL << 1;
    public const ulong ExternalDataFileBit = 1UL << 2;
    public const ulong CompressionTypeBit = 1UL << 3;
    public const ulong ExtendedL2Bit = 1UL << 4;
    public const ulong KnownIncompatible = DirtyBit | CorruptBit | ExternalDataFileBit | CompressionTypeBit | ExtendedL2Bit;
    // compatible_features / autoclear_features bits
    public const ulong LazyRefcountsBit = 1UL << 0;
    public const ulong BitmapsBit = 1UL << 0;

    private readonly byte[] _raw;

    private Qcow2Header(byte[] raw) => _raw = raw;

    /// <summary>The header bytes as they will be written back (length = <see cref="HeaderLength"/>).</summary>
    public ReadOnlySpan<byte> Raw => _raw;

    public uint Version => U32(4);
    public ulong BackingFileOffset { get => U64(8); set => SetU64(8, value); }
    public uint BackingFileSize { get => U32(16); set => SetU32(16, value); }
    public int ClusterBits => (int)U32(20);
    public ulong Size => U64(24);
    public uint CryptMethod => U32(32);
    public uint L1Size => U32(36);
    public ulong L1TableOffset => U64(40);
    public ulong RefcountTableOffset { get => U64(48); set => SetU64(48, value); }
    public uint RefcountTableClusters { get => U32(56); set => SetU32(56, value); }
    public uint NbSnapshots => U32(60);
    public ulong SnapshotsOffset => U64(64);
    public ulong IncompatibleFeatures { get => Version >= 3 ? U64(72) : 0; set => SetU64(72, value); }
    public ulong CompatibleFeatures => Version >= 3 ? U64(80) : 0;
    public ulong AutoclearFeatures { get => Version >= 3 ? U64(88) : 0; set => SetU64(88, value); }
    /// <summary>refcount_order; version 2 is always 4 (16-bit refcounts).</summary>
    public int RefcountOrder => Version >= 3 ? (int)U32(96) : 4;
    public int HeaderLength => Version >= 3 ? (int)U32(100) : Version2Length;
    /// <summary>compression_type: 0 zlib (deflate), 1 zstd; absent means 0.</summary>
    public byte CompressionType => HeaderLength > 104 ? _raw[104] : (byte)0;

    /// <summary>
    /// Sets compression_type and the incompatible bit that goes with it (set for any type but zlib), in a version 3
    /// header long enough to hold the field (a created one is).
    /// </summary>
    public void SetCompressionType(byte type)
    {
        if (Version < 3 || HeaderLength <= 104) throw new InvalidOperationException("the header has no compression_type field");
        _raw[104] = type;
        IncompatibleFeatures = type == 0 ? IncompatibleFeatures & ~CompressionTypeBit : IncompatibleFeatures | CompressionTypeBit;
    }

    public long ClusterSize => 1L << ClusterBits;
    public bool HasExtendedL2 => (IncompatibleFeatures & ExtendedL2Bit) != 0;

    private uint U32(int at) => BinaryPrimitives.ReadUInt32BigEndian(_raw.AsSpan(at));
    private ulong U64(int at) => BinaryPrimitives.ReadUInt64BigEndian(_raw.AsSpan(at));
    private void SetU32(int at, uint v) => BinaryPrimitives.WriteUInt32BigEndian(_raw.AsSpan(at), v);
    private void SetU64(int at, ulong v) => BinaryPrimitives.WriteUInt64BigEndian(_raw.AsSpan(at), v);

    public static bool HasMagic(ReadOnlySpan<byte> head) =>
        head.Length >= 8 && BinaryPrimitives.ReadUInt32BigEndian(head) == Magic;

    /// <summary>Parses and checks the fields that need nothing but the header itself.</summary>
    /// <exception cref="DiskImageException">InvalidFormat, Unsupported, CorruptImage.</exception>
    public static Qcow2Header Parse(ReadOnlySpan<byte> head, string path)
    {
        if (!HasMagic(head) || head.Length < Version2Length)
            ThrowHelper.InvalidFormat(path, "header", 0, "no qcow2 magic \"QFI\\xfb\"");
        uint version = BinaryPrimitives.ReadUInt32BigEndian(head[4..]);
        if (version is not (2 or 3))
            ThrowHelper.Unsupported(path, "header", 4, $"qcow version {version} (this engine reads versions 2 and 3)");
        int length = Version2Length;
        if (version == 3)
        {
            if (head.Length < Version3MinLength)
                ThrowHelper.Corrupt(path, "header", 0, $"a version 3 header needs {Version3MinLength} bytes but the file ends at {head.Length}");
            uint declared = BinaryPrimitives.ReadUInt32BigEndian(head[100..]);
            if (declared < Version3MinLength || declared % 8 != 0)
                ThrowHelper.Corrupt(path, "header", 100, $"header_length {declared} is not a multiple of 8 of at least {Version3MinLength}");
            if (declared > head.Length)
                ThrowHelper.Corrupt(path, "header", 100, $"header_length {declared} reaches past the first cluster or the end of the file");
            length = (int)declared;
        }
        var h = new Qcow2Header(head[..length].ToArray());
        h.Validate(path);
        return h;
    }

    private void Validate(string path)
    {
        int bits = ClusterBits;
        if (bits < MinClusterBits)
            ThrowHelper.Corrupt(path, "header", 20, $"cluster_bits {bits} is below the minimum of {MinClusterBits}");
        if (bits > MaxClusterBits)
            ThrowHelper.Unsupported(path, "header", 20, $"cluster_bits {bits} ({1L << Math.Min(bits, 62)}-byte clusters) is above the 2 MiB this engine and qemu handle");
        if (HeaderLength > ClusterSize)
            ThrowHelper.Corrupt(path, "header", 100, $"header_length {HeaderLength} is larger than a cluster ({ClusterSize})");
        if (RefcountOrder is < 0 or > 6)
            ThrowHelper.Corrupt(path, "header", 96, $"refcount_order {RefcountOrder} is above 6 (64-bit refcounts)");
        if (Version >= 3 && (IncompatibleFeatures & CompressionTypeBit) != 0)
        {
            if (HeaderLength <= 104)
                ThrowHelper.Corrupt(path, "header", 72, "the compression type bit is set but the header has no compression_type field");
            if (CompressionType == 0)
                ThrowHelper.Corrupt(path, "header", 104, "the compression type bit is set but compression_type is 0 (zlib)");
        }
        else if (CompressionType != 0)
            ThrowHelper.Corrupt(path, "header", 104, $"compression_type {CompressionType} without the compression type bit");
        if (CompressionType > 1)
            ThrowHelper.Unsupported(path, "header", 104, $"compression_type {CompressionType} (known: 0 zlib, 1 zstd)");
        if (HasExtendedL2 && bits < 14)
            ThrowHelper.Corrupt(path, "header", 20, $"extended L2 entries need cluster_bits of at least 14 (got {bits})");
        CheckVirtualSize(Size, path, "header", 24, "virtual size");
        if (BackingFileOffset != 0)
        {
            if (BackingFileSize > MaxBackingFileSize)
                ThrowHelper.Corrupt(path, "header", 16, $"backing_file_size {BackingFileSize} is above {MaxBackingFileSize}");
            // Offset and size compared apart: their sum can wrap past 2^64 (found by the mutation fuzzer).
            if (BackingFileOffset < (ulong)HeaderLength || BackingFileOffset > (ulong)ClusterSize || BackingFileSize > (ulong)ClusterSize - BackingFileOffset)
                ThrowHelper.Corrupt(path, "header", 8, $"the backing file name at {BackingFileOffset} (+{BackingFileSize}) is not inside the header cluster after the header");
        }
    }

    /// <summary>Largest virtual size accepted: offsets stay far from overflow (qemu stops far lower, at its L1 limit).</summary>
    public const long MaxVirtualSize = 1L << 60;

    /// <summary>
    /// Refuses a virtual size above <see cref="MaxVirtualSize"/>: the header's size and a snapshot's disk_size are any
    /// 64-bit value in qcow2.txt (only qemu's L1 limit stops it), so a larger one is legal and Unsupported, not corrupt.
    /// </summary>
    /// <exception cref="DiskImageException">Unsupported naming <paramref name="field"/> at <paramref name="offset"/>.</exception>
    public static void CheckVirtualSize(ulong size, string path, string structure, long offset, string field)
    {
        if (size > (ulong)MaxVirtualSize)
            ThrowHelper.Unsupported(path, structure, offset, $"{field} {size} is above the {MaxVirtualSize} bytes this engine addresses");
    }

    /// <summary>A fresh version 3 header (what qemu-img create writes by default: 16-bit refcounts, zlib).</summary>
    public static Qcow2Header CreateNew(int clusterBits, long size, uint l1Size, long l1Offset, long refcountTableOffset, uint refcountTableClusters)
    {
        var raw = new byte[CreatedLength];
        var h = new Qcow2Header(raw);
        h.SetU32(0, Magic);
        h.SetU32(4, 3);
        h.SetU32(20, (uint)clusterBits);
        h.SetU64(24, (ulong)size);
        h.SetU32(36, l1Size);
        h.SetU64(40, (ulong)l1Offset);
        h.SetU64(48, (ulong)refcountTableOffset);
        h.SetU32(56, refcountTableClusters);
        h.SetU32(96, 4);
        h.SetU32(100, CreatedLength);
        return h;
    }

    /// <summary>Names of the set bits of a feature mask, from the known bits and the image's feature name table.</summary>
    public static string FeatureNames(ulong mask, int type, IReadOnlyDictionary<(int Type, int Bit), string> table)
    {
        if (mask == 0) return "none";
        var names = new List<string>();
        for (int bit = 0; bit < 64; bit++)
        {
            if ((mask & (1UL << bit)) == 0) continue;
            string? known = (type, bit) switch
            {
                (0, 0) => "dirty",
                (0, 1) => "corrupt",
                (0, 2) => "external data file",
                (0, 3) => "compression type",
                (0, 4) => "extended L2 entries",
                (1, 0) => "lazy refcounts",
                (2, 0) => "bitmaps",
                (2, 1) => "raw external data",
                _ => null,
            };
            names.Add(known ?? (table.TryGetValue((type, bit), out var n) ? $"{n} (bit {bit})" : $"unknown bit {bit}"));
        }
        return string.Join(", ", names);
    }
}
