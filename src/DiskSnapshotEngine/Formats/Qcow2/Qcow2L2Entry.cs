namespace DiskSnapshotEngine.Formats.Qcow2;

/// <summary>
/// qcow2.txt "Cluster mapping" / "Extended L2 Entries": one L2 entry, and with extended L2 entries its subcluster
/// bitmap (allocation bits 0-31, reads-as-zero bits 32-63). The same bits 9-55 and 63 layout serves L1 entries.
/// <code>
/// standard:   63 COPIED | 62 = 0 | 56-61 reserved | 9-55 host cluster offset | 1-8 reserved | 0 reads as zeros (v3, not extended)
/// compressed: 63 = 0 | 62 = 1 | x-61 additional 512-byte sectors | 0-(x-1) host byte offset, x = 62 - (cluster_bits - 8)
/// </code>
/// </summary>
internal readonly record struct Qcow2L2Entry(ulong Entry, ulong Bitmap)
{
    public const ulong CopiedFlag = 1UL << 63;
    public const ulong CompressedFlag = 1UL << 62;
    public const ulong ZeroFlag = 1UL;
    /// <summary>Bits 9-55: a cluster-aligned host offset (L1 entries, standard L2 entries, refcount table entries).</summary>
    public const ulong OffsetMask = 0x00FF_FFFF_FFFF_FE00UL;
    public const ulong AllZeroBits = 0xFFFF_FFFF_0000_0000UL;

    public bool IsCompressed => (Entry & CompressedFlag) != 0;
    public bool IsCopied => (Entry & CopiedFlag) != 0;
    /// <summary>Host cluster offset of a standard entry (0: none).</summary>
    public long HostOffset => (long)(Entry & OffsetMask);
    /// <summary>Bit 0 of a standard entry without extended L2 entries.</summary>
    public bool HasZeroFlag => (Entry & ZeroFlag) != 0;
    public bool IsUnused => Entry == 0 && Bitmap == 0;

    public bool SubclusterAllocated(int i) => (Bitmap & (1UL << i)) != 0;
    public bool SubclusterZero(int i) => (Bitmap & (1UL << (32 + i))) != 0;

    /// <summary>
    /// The bytes of a compressed cluster's data: from the host offset to the end of its last 512-byte sector.
    /// The refcounted range starts at the sector that holds the offset.
    /// </summary>
    public (long Offset, int Length) CompressedRange(int clusterBits)
    {
        int x = 62 - (clusterBits - 8);
        long offset = (long)(Entry & ((1UL << x) - 1));
        long sectors = (long)((Entry >> x) & ((1UL << (clusterBits - 8)) - 1)) + 1;
        return (offset, (int)(sectors * 512 - (offset & 511)));
    }

    /// <summary>A standard entry for data at <paramref name="host"/> with refcount 1.</summary>
    public static ulong Data(long host) => (ulong)host | CopiedFlag;
}
