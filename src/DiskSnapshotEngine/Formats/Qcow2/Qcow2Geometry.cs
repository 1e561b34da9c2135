using DiskSnapshotEngine.Errors;

namespace DiskSnapshotEngine.Formats.Qcow2;

/// <summary>
/// The sizes every qcow2 structure derives from the header (qcow2.txt "Cluster mapping", "Host cluster
/// management"), and the checks that keep a table offset away from the header and the other tables.
/// </summary>
internal sealed class Qcow2Geometry
{
    public Qcow2Geometry(string path, int clusterBits, bool extendedL2, int refcountOrder, long virtualSize)
    {
        Path = path;
        ClusterBits = clusterBits;
        ClusterSize = 1L << clusterBits;
        ExtendedL2 = extendedL2;
        EntryBytes = extendedL2 ? 16 : 8;
        L2Entries = (int)(ClusterSize / EntryBytes);
        SubclusterBits = extendedL2 ? clusterBits - 5 : clusterBits;
        RefcountBits = 1 << refcountOrder;
        RefcountsPerBlock = ClusterSize * 8 / RefcountBits;
        VirtualSize = virtualSize;
    }

    public string Path { get; }
    public int ClusterBits { get; }
    public long ClusterSize { get; }
    public bool ExtendedL2 { get; }
    /// <summary>Bytes of one L2 entry: 8, or 16 with extended L2 entries.</summary>
    public int EntryBytes { get; }
    public int L2Entries { get; }
    /// <summary>log2 of the write granule: the subcluster with extended L2 entries (32 per cluster), else the cluster.</summary>
    public int SubclusterBits { get; }
    public long SubclusterSize => 1L << SubclusterBits;
    public int RefcountBits { get; }
    public long RefcountsPerBlock { get; }
    public long VirtualSize { get; }

    /// <summary>The same geometry for a disk of another size (an internal snapshot's), with the same reserved ranges.</summary>
    public Qcow2Geometry WithVirtualSize(long virtualSize)
    {
        var g = new Qcow2Geometry(Path, ClusterBits, ExtendedL2, System.Numerics.BitOperations.Log2((uint)RefcountBits), virtualSize);
        g.Reserved.AddRange(Reserved);
        return g;
    }

    /// <summary>L1 entries needed to map the whole virtual disk.</summary>
    public long L1EntriesNeeded => VirtualSize == 0 ? 0 : ((VirtualSize - 1) >> ClusterBits) / L2Entries + 1;

    /// <summary>Byte ranges of the file that hold the header cluster and the active tables: no other structure may overlap them.</summary>
    public List<(long Offset, long Length, string Name)> Reserved { get; } = new();

    /// <summary>Throws CorruptImage when a table cluster at <paramref name="offset"/> is unaligned or overlaps a reserved range.</summary>
    public void CheckTableCluster(long offset, string what, string structure, long? at)
    {
        if (offset <= 0 || (offset & (ClusterSize - 1)) != 0)
            ThrowHelper.Corrupt(Path, structure, at, $"{what} offset {offset} is not a non-zero multiple of the cluster size {ClusterSize}");
        foreach (var (o, l, name) in Reserved)
            if (offset < o + l && o < offset + ClusterSize)
                ThrowHelper.Corrupt(Path, structure, at, $"{what} at {offset} overlaps the {name} at {o}");
    }

    /// <summary>Throws CorruptImage unless a host data cluster is aligned and clear of the header and the active tables.</summary>
    public void CheckDataCluster(long offset, string structure, long? at)
    {
        if ((offset & (ClusterSize - 1)) != 0)
            ThrowHelper.Corrupt(Path, structure, at, $"data cluster offset {offset} is not aligned to the cluster size {ClusterSize}");
        foreach (var (o, l, name) in Reserved)
            if (offset < o + l && o < offset + ClusterSize)
                ThrowHelper.Corrupt(Path, structure, at, $"data cluster at {offset} overlaps the {name} at {o}");
    }
}
