using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Formats.Qcow2;

/// <summary>
/// A qcow2 image (QEMU docs/interop/qcow2.txt, versions 2 and 3) as a layer: guest clusters map through the L1 and
/// L2 tables to host clusters (or to compressed data, or read as zeros, or are absent: read the backing file), and
/// host clusters are reference counted. This file answers status and reads; Qcow2Layer.Writes.cs allocates.
/// <code>
/// [header cluster: header, extensions, backing file name][refcount table][refcount blocks][L1][L2 tables, data clusters...]
/// </code>
/// The layer's lock guards the tables and caches: readers may ask for status while a writer allocates.
/// </summary>
internal sealed partial class Qcow2Layer : IDiskLayer, IEncodedDataLayer, ISealableLayer, IRewriteLoss
{
    private readonly object _sync = new();
    private readonly Qcow2Header _header;
    private readonly Qcow2HeaderExtensions _extensions;
    private readonly Qcow2Geometry _g;
    private readonly Qcow2Tables _tables;
    private Qcow2Compression _compression;
    private Qcow2Refcounts? _refcounts;
    private string? _backingFile;
    private bool _disposed;

    internal Qcow2Layer(IImageFile file, Qcow2Header header, Qcow2HeaderExtensions extensions, string? backingFile,
        Qcow2Geometry geometry, Qcow2Tables tables, bool writable, Qcow2Snapshot? snapshot = null)
    {
        Snapshot = snapshot;
        File = file;
        _header = header;
        _extensions = extensions;
        _backingFile = backingFile;
        _g = geometry;
        _tables = tables;
        IsWritable = writable;
        _compression = new Qcow2Compression(file, geometry, header.CompressionType);
        _headerAreaEnd = HeaderAreaLength();
    }

    public string Path => File.Path;
    public ImageFormat Format => ImageFormat.Qcow2;
    public ImageType Type => HasBacking ? ImageType.Differencing : ImageType.Dynamic;
    public long VirtualSize => _g.VirtualSize;
    /// <summary>qcow2 records no sector size; qemu presents 512-byte sectors.</summary>
    public int LogicalSectorSize => 512;
    public int PhysicalSectorSize => 512;
    public int BlockSize => (int)_g.ClusterSize;
    public bool IsWritable { get; }
    public IImageFile File { get; }
    /// <summary>qcow2 records no content version: there is nothing to preserve.</summary>
    public bool PreserveVersionOnWrite { get; set; }
    public SealReasons Seal => _extensions.Seal.Seal;
    public SoleChild SoleChild => _extensions.Seal.Sole;
    /// <summary>dse's own id of the image (a header extension), since qcow2 has none.</summary>
    public Guid CloneId => _extensions.Id;
    /// <summary>qcow2 has no image identity; children name it by path.</summary>
    public ImageIdentity Identity => default;

    private bool HasBacking => _backingFile is not null;

    /// <summary>The internal snapshot this read-only view shows, or null for the active state.</summary>
    internal Qcow2Snapshot? Snapshot { get; }

    /// <summary>The backing file name as stored (relative names are relative to this image's folder).</summary>
    public string? BackingFile => _backingFile;

    /// <summary>The backing format name as stored (backing_fmt), or null.</summary>
    public string? BackingFormat => _extensions.BackingFormatName;

    /// <summary>Number of internal snapshots (nb_snapshots).</summary>
    public int InternalSnapshotCount => (int)_header.NbSnapshots;

    /// <summary>
    /// What a rewrite into a new file (compact) would drop, or null when nothing: internal snapshots, bitmaps and
    /// header extensions live only in this file.
    /// </summary>
    public string? RewriteWouldLose =>
        _header.NbSnapshots > 0 ? $"its {_header.NbSnapshots} internal snapshot(s)"
        : _extensions.Find(Qcow2HeaderExtensions.Bitmaps) is not null ? "its persistent dirty bitmaps"
        : null;

    public ParentLink? ParentLink => _backingFile is { } name
        ? new ParentLink(new[] { ResolveBacking(name) }, null, null, null, "backing_file", Qcow2FormatNames.ToFormat(BackingFormat))
        : null;

    // qemu resolves a relative backing file name against the folder of the image that names it.
    private string ResolveBacking(string name) =>
        System.IO.Path.IsPathRooted(name) ? name : System.IO.Path.GetFullPath(System.IO.Path.Combine(System.IO.Path.GetDirectoryName(Path) ?? "/", name));

    public IReadOnlyList<KeyValuePair<string, string>> Details => Qcow2Details.Of(this, _header, _extensions, _g, () => InternalSnapshots());

    /// <summary>Bytes of the clusters the refcounts mark in use, or null for an image too large to count cheaply.</summary>
    internal long? AllocatedBytes()
    {
        lock (_sync) return Refcounts.CountAllocated(maxBlocks: 1024) * _g.ClusterSize;
    }

    internal IReadOnlyList<Qcow2Snapshot> InternalSnapshots() =>
        _header.NbSnapshots == 0 ? Array.Empty<Qcow2Snapshot>()
            : Qcow2Snapshot.ReadTable(File, Path, (long)_header.SnapshotsOffset, _header.NbSnapshots);

    // ---- status -------------------------------------------------------------------------------------------------

    public LayerExtent GetStatus(long offset, long length)
    {
        CheckRange(offset, length);
        if (length == 0) return new LayerExtent(offset, 0, ExtentKind.NotPresent);
        long end = offset + length;
        lock (_sync)
        {
            long first = offset >> _g.ClusterBits, last = (end - 1) >> _g.ClusterBits;
            if ((_pendingRun is { IsEmpty: false } p && p.Overlaps(first, last)) || PlacedOverlaps(first, last)) DrainPending();
            var (kind, fileAt, granuleEnd) = Classify(offset);
            long runEnd = Math.Min(end, granuleEnd);
            while (runEnd < end)
            {
                var (k, f, e) = Classify(runEnd);
                if (k != kind) break;
                if (k == ExtentKind.Data && (fileAt < 0 ? f >= 0 : f != fileAt + (runEnd - offset))) break;
                runEnd = Math.Min(end, e);
            }
            return new LayerExtent(offset, runEnd - offset, kind, fileAt);
        }
    }

    /// <summary>
    /// The status of the write granule (subcluster or cluster) holding <paramref name="offset"/>: kind, file offset of
    /// <paramref name="offset"/> for data (-1 when compressed), and where the granule ends.
    /// </summary>
    private (ExtentKind Kind, long FileOffset, long End) Classify(long offset)
    {
        long cluster = offset >> _g.ClusterBits;
        long clusterStart = cluster << _g.ClusterBits;
        long clusterEnd = Math.Min(_g.VirtualSize, clusterStart + _g.ClusterSize);
        var absent = HasBacking ? ExtentKind.NotPresent : ExtentKind.Zero;
        // No L2 table: every cluster it would map is unallocated, so a sparse disk is answered in L2-sized steps.
        if (!_tables.HasL2(cluster))
            return (absent, -1, Math.Min(_g.VirtualSize, (cluster / _g.L2Entries + 1) * _g.L2Entries << _g.ClusterBits));
        var e = _tables.Get(cluster);
        if (e.IsCompressed) return (ExtentKind.Data, -1, clusterEnd);
        long host = e.HostOffset;
        if (host != 0) _g.CheckDataCluster(host, "L2 table", _tables.EntryOffset(cluster));
        if (!_g.ExtendedL2)
        {
            if (e.HasZeroFlag && _header.Version >= 3) return (ExtentKind.Zero, -1, clusterEnd);
            if (host == 0) return (absent, -1, clusterEnd);
            return DataAt(host + (offset - clusterStart), offset, clusterEnd);
        }
        int sub = (int)((offset - clusterStart) >> _g.SubclusterBits);
        long subEnd = Math.Min(clusterEnd, clusterStart + ((long)(sub + 1) << _g.SubclusterBits));
        bool allocated = e.SubclusterAllocated(sub), zero = e.SubclusterZero(sub);
        if (allocated && (zero || host == 0))
            ThrowHelper.Corrupt(Path, "L2 table", _tables.EntryOffset(cluster),
                $"subcluster {sub} of guest cluster {cluster} is {(zero ? "both allocated and zero" : "allocated without a host cluster")}");
        if (zero) return (ExtentKind.Zero, -1, subEnd);
        if (!allocated) return (absent, -1, subEnd);
        return DataAt(host + (offset - clusterStart), offset, subEnd);
    }

    // Host clusters past the end of the file read as zeros, as qemu reads them (a file cut short by a preallocation
    // or a crash); the part that is in the file is data.
    private (ExtentKind, long, long) DataAt(long fileOffset, long offset, long end)
    {
        long fileLength = File.Length;
        if (fileOffset >= fileLength) return (ExtentKind.Zero, -1, end);
        return (ExtentKind.Data, fileOffset, Math.Min(end, offset + (fileLength - fileOffset)));
    }

    /// <summary>Reads this layer's own content: decoded compressed clusters, file data, zeros.</summary>
    public void ReadEncoded(long offset, Span<byte> buffer)
    {
        CheckRange(offset, buffer.Length);
        while (buffer.Length > 0)
        {
            long cluster = offset >> _g.ClusterBits;
            long clusterStart = cluster << _g.ClusterBits;
            int n = (int)Math.Min(buffer.Length, clusterStart + _g.ClusterSize - offset);
            var part = buffer[..n];
            lock (_sync)
            {
                DrainIfPending(cluster, cluster);
                var e = _tables.Get(cluster);
                if (e.IsCompressed) _compression.Decode(e, _tables.EntryOffset(cluster)).Slice((int)(offset - clusterStart), n).CopyTo(part);
                else ReadPlain(offset, part);
            }
            offset += n;
            buffer = buffer[n..];
        }
    }

    private void ReadPlain(long offset, Span<byte> buffer)
    {
        while (buffer.Length > 0)
        {
            var (kind, fileAt, end) = Classify(offset);
            int n = (int)Math.Min(buffer.Length, end - offset);
            if (kind == ExtentKind.Data) File.ReadExactly(buffer[..n], fileAt, "data cluster");
            else if (kind == ExtentKind.Zero) buffer[..n].Clear();
            else throw new InvalidOperationException($"{Path}: [{offset}, +{n}) is not in this layer; read it through the chain");
            offset += n;
            buffer = buffer[n..];
        }
    }

    private Qcow2Refcounts Refcounts
    {
        get
        {
            lock (_sync)
                return _refcounts ??= new Qcow2Refcounts(File, _g, (long)_header.RefcountTableOffset, _header.RefcountTableClusters);
        }
    }

    public CheckReport Check()
    {
        lock (_sync)
            return new Qcow2Check(File, _header, _g, _tables, Refcounts, InternalSnapshots, _extensions).Run();
    }

    private void CheckRange(long offset, long length) => LayerGuards.CheckRange(this, offset, length);

    private void EnsureWritable(string operation) => LayerGuards.EnsureWritable(this, operation);

    public void Dispose() => this.CloseOnce(ref _disposed, _pendingRun);
}
