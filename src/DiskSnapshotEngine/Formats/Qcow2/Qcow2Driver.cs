using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Formats.Qcow2;

/// <summary>
/// QEMU qcow2, versions 2 and 3 (docs/interop/qcow2.txt): read everything qemu-img writes (any refcount width,
/// zero clusters, zlib and zstd compressed clusters, extended L2 entries, internal snapshots listed); write with
/// crash-ordered refcounts; create version 3 images with 64 KiB clusters as qemu-img does. A child names its
/// backing file by path (relative to its own folder when it can) and records the backing format, so qemu opens
/// the chain itself.
/// </summary>
internal sealed class Qcow2Driver : IImageFormatDriver, IInternalSnapshotDriver
{
    /// <summary>qemu-img's default cluster size.</summary>
    public const int DefaultClusterSize = 64 << 10;

    public ImageFormat Format => ImageFormat.Qcow2;

    /// <inheritdoc/>
    /// <remarks>Cluster 0: the header and the backing file name, which dse reads only from there (as qemu requires).</remarks>
    public long? LinkHeaderBytes(IDiskLayer layer) => Math.Max(64 << 10, layer.BlockSize);
    public string Name => "qcow2";
    public IReadOnlyList<string> Extensions { get; } = new[] { ".qcow2" };

    public bool Probe(ReadOnlySpan<byte> head) => Qcow2Header.HasMagic(head);

    public IDiskLayer Open(IImageFile file, bool writable) => Open(file, writable, snapshot: null);

    /// <summary>The image as it was at internal snapshot <paramref name="snapshot"/> (id or name), read-only (<see cref="Qcow2SnapshotView"/>).</summary>
    public IDiskLayer OpenInternalSnapshot(IImageFile file, string snapshot) => Open(file, writable: false, snapshot);

    private static Qcow2Layer Open(IImageFile file, bool writable, string? snapshot)
    {
        string path = file.Path;
        // Nothing is written before everything below is validated: a failed open leaves the file as it was.
        var first = new byte[(int)Math.Min(4096, file.Length)];
        file.ReadExactly(first, 0, "header");
        var header = Qcow2Header.Parse(first, path);
        var cluster = new byte[header.ClusterSize];
        file.ReadOrZero(cluster, 0);
        header = Qcow2Header.Parse(cluster, path);
        var extensions = Qcow2HeaderExtensions.Parse(cluster, header.HeaderLength, path);
        CheckFeatures(path, header, extensions);

        var g = new Qcow2Geometry(path, header.ClusterBits, header.HasExtendedL2, header.RefcountOrder, (long)header.Size);
        g.Reserved.Add((0, g.ClusterSize, "header cluster"));
        long l1Offset = (long)header.L1TableOffset;
        if (header.L1Size < g.L1EntriesNeeded)
            ThrowHelper.Corrupt(path, "header", 36, $"l1_size {header.L1Size} maps less than the virtual size {header.Size} (needs {g.L1EntriesNeeded} entries)");
        if (header.L1Size * 8L > Qcow2Tables.MaxL1Bytes)
            ThrowHelper.Unsupported(path, "header", 36, $"l1_size {header.L1Size} is above qemu's {Qcow2Tables.MaxL1Bytes >> 20} MiB L1 table limit");
        if (header.L1Size > 0) CheckArea(file, g, l1Offset, header.L1Size * 8L, "L1 table", 40);
        g.Reserved.Add((l1Offset, header.L1Size * 8L, "L1 table"));
        long refcountOffset = (long)header.RefcountTableOffset;
        long refcountBytes = header.RefcountTableClusters * g.ClusterSize;
        if (header.RefcountTableClusters == 0)
            ThrowHelper.Corrupt(path, "header", 56, "refcount_table_clusters is 0");
        if (refcountBytes > Qcow2Refcounts.MaxTableBytes)
            ThrowHelper.Unsupported(path, "header", 56, $"the refcount table of {refcountBytes} bytes is above qemu's {Qcow2Refcounts.MaxTableBytes >> 20} MiB limit");
        CheckArea(file, g, refcountOffset, refcountBytes, "refcount table", 48);
        g.Reserved.Add((refcountOffset, refcountBytes, "refcount table"));
        if (header.NbSnapshots > Qcow2Snapshot.MaxCount)
            ThrowHelper.Corrupt(path, "header", 60, $"nb_snapshots {header.NbSnapshots} is above qemu's limit of {Qcow2Snapshot.MaxCount}");
        if (header.NbSnapshots > 0)
        {
            long at = (long)header.SnapshotsOffset;
            if (at <= 0 || (at & (g.ClusterSize - 1)) != 0 || at >= file.Length)
                ThrowHelper.Corrupt(path, "header", 64, $"snapshots_offset {at} is not a cluster inside the file");
        }
        string? backing = null;
        if (header.BackingFileOffset != 0 && header.BackingFileSize > 0)
        {
            backing = System.Text.Encoding.UTF8.GetString(cluster, (int)header.BackingFileOffset, (int)header.BackingFileSize);
            if (backing.Contains('\0'))
                ThrowHelper.Corrupt(path, "header", (long)header.BackingFileOffset, "the backing file name contains a NUL character");
        }
        if (writable) CheckWritable(path, header);
        if (writable && !file.CanWrite) ThrowHelper.ReadOnly(path, "open for writing");
        if (snapshot is not null)
        {
            var s = Qcow2SnapshotView.Find(
                header.NbSnapshots == 0 ? [] : Qcow2Snapshot.ReadTable(file, path, (long)header.SnapshotsOffset, header.NbSnapshots), snapshot, path);
            var (sg, st) = Qcow2SnapshotView.Open(file, g, s);
            return new Qcow2Layer(file, header, extensions, backing, sg, st, writable: false, s);
        }
        var l1 = Qcow2Tables.ReadL1(file, l1Offset, header.L1Size);
        var tables = new Qcow2Tables(file, g, l1, l1Offset);
        return new Qcow2Layer(file, header, extensions, backing, g, tables, writable);
    }

    // A table must start on a cluster after the header cluster and lie inside the file.
    private static void CheckArea(IImageFile file, Qcow2Geometry g, long offset, long length, string name, long fieldAt)
    {
        g.CheckTableCluster(offset, name, "header", fieldAt);
        if (offset > file.Length - length)
            ThrowHelper.Corrupt(g.Path, "header", fieldAt, $"the {name} at {offset} (+{length}) reaches past the end of the file at {file.Length}");
    }

    private static void CheckFeatures(string path, Qcow2Header h, Qcow2HeaderExtensions ext)
    {
        var names = ext.FeatureNames();
        if (h.CryptMethod != 0 || ext.Find(Qcow2HeaderExtensions.FullDiskEncryption) is not null)
            ThrowHelper.Unsupported(path, "header", 32, $"encrypted images (crypt_method {h.CryptMethod}) are not supported");
        ulong unknown = h.IncompatibleFeatures & ~Qcow2Header.KnownIncompatible;
        if (unknown != 0)
            ThrowHelper.Unsupported(path, "header", 72, $"incompatible feature(s) this engine does not know: {Qcow2Header.FeatureNames(unknown, 0, names)}");
        if ((h.IncompatibleFeatures & Qcow2Header.ExternalDataFileBit) != 0 || ext.Find(Qcow2HeaderExtensions.ExternalDataFile) is not null)
            ThrowHelper.Unsupported(path, "header", 72, "images with an external data file are not supported");
    }

    // What a valid image may have that still keeps us from writing it.
    private static void CheckWritable(string path, Qcow2Header h)
    {
        if ((h.IncompatibleFeatures & Qcow2Header.CorruptBit) != 0)
            ThrowHelper.Corrupt(path, "header", 72, "the corrupt bit is set: the image opens read-only only (repair it with 'qemu-img check -r all')");
        if ((h.IncompatibleFeatures & Qcow2Header.DirtyBit) != 0)
            ThrowHelper.Unsupported(path, "header", 72,
                "the dirty bit is set (lazy refcounts were not written back): refcounts may be stale, so the image opens read-only only; 'qemu-img check -r all' repairs it");
        if (h.NbSnapshots > 0)
            ThrowHelper.Unsupported(path, "header", 60,
                $"the image has {h.NbSnapshots} internal snapshot(s): writing would need copy-on-write of shared clusters, which this engine does not do (it opens read-only)");
    }

    // A backing file may be any image qemu reads; the name, not an id, is the link, so every parent is accepted.
    public void CheckParent(string path, ParentDescriptor parent) { }

    public IDiskLayer Create(IImageFile file, ImageCreateOptions options, ParentDescriptor? parent) =>
        Qcow2Creator.Create(file, options, parent);

    /// <summary>
    /// The backing file name a child at <paramref name="childPath"/> records for <paramref name="parentPath"/>:
    /// relative to the child's folder (as qemu resolves it) when <see cref="ParentPath"/> allows; absolute otherwise.
    /// </summary>
    internal static string BackingName(string childPath, string parentPath) =>
        ParentPath.Relative(childPath, parentPath) ?? System.IO.Path.GetFullPath(parentPath);
}
