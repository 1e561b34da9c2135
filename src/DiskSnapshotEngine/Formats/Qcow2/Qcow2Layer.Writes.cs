using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Formats.Qcow2;

/// <summary>
/// The write path. Data goes to its host cluster at once; the refcount, L2 and L1 changes that publish it stay in
/// memory and are committed in batches in the order qemu keeps (<see cref="Commit"/>): refcount blocks, flush,
/// refcount table, flush, L2 tables, flush, L1, flush, then the frees of replaced clusters, flush. A crash at any
/// point leaves the old mapping (new clusters leak at worst) or the new one; nothing is ever referenced before it is
/// counted, nor reused before its last reference is gone from the disk.
/// </summary>
internal sealed partial class Qcow2Layer
{
    // Allocations per batch: 64 MiB of 64 KiB clusters between two commits.
    private const int CommitEvery = 1024;
    private int _allocatedSinceCommit;
    private bool _started;
    private int _headerAreaEnd;
    private Qcow2PendingRun? _pendingRun;
    private Qcow2PendingRun _pending => _pendingRun ??= new Qcow2PendingRun(_g.ClusterSize);

    public (long Offset, long Length) GetWriteSpan(long offset, long length)
    {
        CheckRange(offset, length);
        if (length == 0) return (offset, 0);
        long end = offset + length;
        lock (_sync)
        {
            DrainIfPending(offset >> _g.ClusterBits, (end - 1) >> _g.ClusterBits);
            long start = InPlace(offset) ? offset : GranuleStart(offset);
            long stop = InPlace(end - 1) ? end : GranuleEnd(end - 1);
            return (start, stop - start);
        }
    }

    // A write granule can take partial data only where it already has a host cluster of its own that reads its data.
    private bool InPlace(long offset)
    {
        long cluster = offset >> _g.ClusterBits;
        var e = _tables.Get(cluster);
        if (e.IsCompressed || e.HostOffset == 0) return false;
        if (_g.ExtendedL2) return e.SubclusterAllocated(SubIndex(offset)) && Owned(cluster, e);
        return !(e.HasZeroFlag && _header.Version >= 3) && Owned(cluster, e);
    }

    // A writable image has no internal snapshots, so every host cluster it maps has refcount 1 (COPIED); one that
    // does not is corrupt, and writing it in place could change what another reference reads. A data cluster that is
    // metadata is corrupt too (CheckNotMetadata).
    private bool Owned(long cluster, Qcow2L2Entry e)
    {
        CheckNotMetadata(cluster, e.HostOffset);
        if (e.IsCopied) return true;
        ulong refcount = Refcounts.Get(e.HostOffset >> _g.ClusterBits);
        if (refcount == 1) return true;
        throw new DiskImageException(ErrorKind.CorruptImage,
            $"guest cluster {cluster} maps host cluster {e.HostOffset} whose refcount is {refcount}, not 1", Path, "L2 table", _tables.EntryOffset(cluster));
    }

    private int SubIndex(long offset) => (int)((offset & (_g.ClusterSize - 1)) >> _g.SubclusterBits);

    // Compressed clusters have no subclusters: they are replaced whole.
    private long Granule(long offset) => _g.ExtendedL2 && !_tables.Get(offset >> _g.ClusterBits).IsCompressed ? _g.SubclusterSize : _g.ClusterSize;
    private long GranuleStart(long offset) => offset - (offset % Granule(offset));
    private long GranuleEnd(long offset) => Math.Min(_g.VirtualSize, GranuleStart(offset) + Granule(offset));

    public void Write(long offset, ReadOnlySpan<byte> data)
    {
        EnsureWritable("write");
        CheckRange(offset, data.Length);
        BeginWrite();
        foreach (var p in BlockPieces.Of(offset, data.Length, _g.ClusterSize))
            WriteInCluster(p.Block, p.InBlock, data.Slice(p.Start, p.Length));
    }

    private void WriteInCluster(long cluster, long inCluster, ReadOnlySpan<byte> piece)
    {
        long clusterStart = cluster << _g.ClusterBits;
        long clusterLength = Math.Min(_g.ClusterSize, _g.VirtualSize - clusterStart);
        lock (_sync)
        {
            DrainIfPending(cluster, cluster);
            var e = _tables.Get(cluster);
            // With subclusters, a host cluster of our own takes any write whose partly covered subclusters it already
            // holds; the others must come whole (the chain filled them, copy-on-write).
            bool inPlace = _g.ExtendedL2
                ? !e.IsCompressed && EdgeInPlace(clusterStart, inCluster) && EdgeInPlace(clusterStart, inCluster + piece.Length, clusterLength)
                : InPlace(clusterStart);
            bool ownHost = _g.ExtendedL2 ? !e.IsCompressed && e.HostOffset != 0 && Owned(cluster, e) : inPlace;
            if (!inPlace) RequireSpan(cluster, inCluster, piece.Length, clusterLength, e);
            if (!inPlace && !_g.ExtendedL2 && SpanHelpers.IsAllZero(piece) && (!HasBacking || _header.Version >= 3))
            {
                // A whole cluster of zeros needs no data: zero flag in a child, unallocated in a base image.
                SetEntry(cluster, e, new Qcow2L2Entry(HasBacking ? Qcow2L2Entry.ZeroFlag : 0, 0));
                return;
            }
            // A new L2 table is taken before the data cluster, so consecutive data clusters stay contiguous in the file.
            if (!ownHost) _tables.EnsureL2(cluster, () => { _allocatedSinceCommit++; return Refcounts.Allocate(); });
            long host = ownHost ? e.HostOffset : Refcounts.Allocate();
            _g.CheckDataCluster(host, "L2 table", _tables.EntryOffset(cluster));
            var now = NewEntry(e, host, inCluster, piece.Length);
            if (!ownHost) _allocatedSinceCommit++;
            // Whole clusters, new or rewritten in place, gather into one large write while their hosts follow each other.
            if (!_pending.TryAppend(cluster, host, piece, e, now))
            {
                DrainPending();
                if (!_pending.TryAppend(cluster, host, piece, e, now))
                {
                    File.Write(piece, host + inCluster);
                    SetEntry(cluster, e, now);
                }
            }
            if (_allocatedSinceCommit >= CommitEvery || _tables.CacheNearlyFullOfDirty || Refcounts.NearlyFullOfDirty) Commit();
        }
    }

    // The entry after data lands at host + inCluster: data at host (refcount 1); with subclusters, the ones written
    // become allocated and stop reading as zeros, the others keep their state (or lose it with a replaced
    // compressed cluster, which was written whole).
    private Qcow2L2Entry NewEntry(Qcow2L2Entry e, long host, long inCluster, int length)
    {
        if (!_g.ExtendedL2) return new Qcow2L2Entry(Qcow2L2Entry.Data(host), 0);
        ulong bits = SubclusterMask(inCluster, length);
        ulong bitmap = e.IsCompressed ? bits : (e.Bitmap | bits) & ~(bits << 32);
        return new Qcow2L2Entry(Qcow2L2Entry.Data(host), bitmap);
    }

    /// <summary>Publishes gathered new clusters before anything looks at guest clusters [<paramref name="first"/>, <paramref name="last"/>].</summary>
    private void DrainIfPending(long first, long last)
    {
        if (_pending.Overlaps(first, last) || PlacedOverlaps(first, last)) DrainPending();
    }

    private void DrainPending()
    {
        _pending.Drain(File, SetEntry);
        if (_placed.Count > 0) PublishPlaced();
    }

    private bool EdgeInPlace(long clusterStart, long inCluster) =>
        (inCluster & (_g.SubclusterSize - 1)) == 0 || InPlace(clusterStart + inCluster);

    private bool EdgeInPlace(long clusterStart, long end, long clusterLength) =>
        (end & (_g.SubclusterSize - 1)) == 0 || end == clusterLength || InPlace(clusterStart + end - 1);

    private ulong SubclusterMask(long inCluster, int length)
    {
        int first = (int)(inCluster >> _g.SubclusterBits), last = (int)((inCluster + length - 1) >> _g.SubclusterBits);
        ulong mask = 0;
        for (int i = first; i <= last; i++) mask |= 1UL << i;
        return mask;
    }

    // The chain asks GetWriteSpan first; a piece that is not a whole granule where one is needed is a caller bug.
    private void RequireSpan(long cluster, long inCluster, int length, long clusterLength, Qcow2L2Entry e)
    {
        long granule = _g.ExtendedL2 && !e.IsCompressed ? _g.SubclusterSize : _g.ClusterSize;
        long end = inCluster + length;
        if (inCluster % granule != 0 || (end % granule != 0 && end != clusterLength))
            throw new DiskImageException(ErrorKind.InvalidArgument,
                $"a write of [{inCluster}, {end}) into guest cluster {cluster} must cover whole {granule}-byte units (ask GetWriteSpan first)", Path);
    }

    /// <summary>Changes an L2 entry in memory and records the release of what the old one held.</summary>
    private void SetEntry(long cluster, Qcow2L2Entry old, Qcow2L2Entry now)
    {
        if (old == now) return;
        _tables.Set(cluster, now, () => { _allocatedSinceCommit++; return Refcounts.Allocate(); });
        if (old.IsCompressed)
        {
            var (offset, length) = old.CompressedRange(_g.ClusterBits);
            long first = (offset & ~511L) >> _g.ClusterBits, last = (offset + length - 1) >> _g.ClusterBits;
            for (long c = first; c <= last; c++) Refcounts.Free(c);
        }
        else if (old.HostOffset != 0 && old.HostOffset != now.HostOffset) Refcounts.Free(old.HostOffset >> _g.ClusterBits);
    }

    public void WriteZeroes(long offset, long length)
    {
        EnsureWritable("write zeroes");
        CheckRange(offset, length);
        long end = offset + length;
        if ((offset & (_g.ClusterSize - 1)) != 0 || ((end & (_g.ClusterSize - 1)) != 0 && end != _g.VirtualSize))
            ThrowHelper.InvalidArgument($"WriteZeroes range [{offset}, {end}) is not cluster-aligned (cluster size {_g.ClusterSize})", Path);
        if (length == 0) return;
        BeginWrite();
        if (_header.Version < 3 && HasBacking && !_g.ExtendedL2)
        {
            // Version 2 has no zero flag: a child must hold zeros as data to hide its backing file.
            using var zeros = AlignedBufferPool.Rent((int)_g.ClusterSize);
            zeros.Span.Clear();
            for (long at = offset; at < end; at += _g.ClusterSize)
                Write(at, zeros.Span[..(int)Math.Min(_g.ClusterSize, end - at)]);
            return;
        }
        // Zero flag (or all subclusters zero) in a child; nothing at all in a base image. The old host cluster is freed.
        var zero = !HasBacking ? default
            : _g.ExtendedL2 ? new Qcow2L2Entry(0, Qcow2L2Entry.AllZeroBits) : new Qcow2L2Entry(Qcow2L2Entry.ZeroFlag, 0);
        lock (_sync)
        {
            DrainPending();
            for (long c = offset >> _g.ClusterBits; c << _g.ClusterBits < end; c++)
            {
                var e = _tables.Get(c);
                if (e == zero) continue;
                SetEntry(c, e, zero);
                if (_tables.CacheNearlyFullOfDirty || Refcounts.NearlyFullOfDirty) Commit();
            }
        }
    }

    /// <summary>
    /// Before the first change: the tables must not overlap one another; autoclear bits name features kept consistent
    /// by their writers (bitmaps); we do not update them, so the spec says to clear them first. Done once, durable
    /// before any data moves.
    /// </summary>
    private void BeginWrite()
    {
        if (_started) return;
        lock (_sync)
        {
            if (_started) return;
            CheckMetadataDistinct();
            if (_header.AutoclearFeatures != 0)
            {
                _header.AutoclearFeatures = 0;
                WriteHeaderCluster();
                File.Flush();
            }
            _started = true;
        }
    }

    public void Flush()
    {
        if (!IsWritable) return;
        lock (_sync) Commit();
    }

    /// <summary>Publishes the batched metadata in crash-safe order (see the type's remarks).</summary>
    private void Commit()
    {
        DrainPending();
        var r = _refcounts;
        bool refcountsDirty = r is not null && (r.HasDirtyBlocks || r.HasDirtyTable || r.HasPendingFrees);
        if (!refcountsDirty && _tables.DirtyTables == 0 && !_tables.HasDirtyL1)
        {
            File.Flush();
            return;
        }
        // Counted before referenced: refcount blocks (and the data written so far) first.
        r?.WriteDirtyBlocks();
        File.Flush();
        if (r is not null && r.HasDirtyTable)
        {
            bool moved = r.MovedFrom is not null;
            r.WriteTable();
            File.Flush();
            if (moved)
            {
                _header.RefcountTableOffset = (ulong)r.TableOffset;
                _header.RefcountTableClusters = r.TableClusters;
                WriteHeaderCluster();
                File.Flush();
                r.TableMoveCommitted();
            }
        }
        // An L2 table reaches the disk before the L1 entry that makes it reachable.
        _tables.WriteDirtyL2();
        File.Flush();
        _tables.WriteDirtyL1();
        File.Flush();
        // Released only once no reference to them is left on disk.
        if (r is not null && r.HasPendingFrees)
        {
            r.ApplyFrees();
            r.WriteDirtyBlocks();
            File.Flush();
        }
        _allocatedSinceCommit = 0;
    }

    public void SetParent(ParentDescriptor parent)
    {
        EnsureWritable("set the parent");
        if (!HasBacking)
            throw new DiskImageException(ErrorKind.Unsupported,
                "this qcow2 has no backing file: giving it one would change what its unallocated clusters read", Path, "header");
        ChainRules.CheckCompatible(Path, LogicalSectorSize, parent.Path, parent.LogicalSectorSize);
        lock (_sync)
        {
            // Pending data is published before the backing file changes under it.
            Commit();
            string name = Qcow2Driver.BackingName(Path, parent.Path);
            string? format = Qcow2FormatNames.ToQemu(parent.Format)
                ?? throw new DiskImageException(ErrorKind.Unsupported, $"qemu cannot read a {parent.Format.Name()} backing file", Path);
            string? oldName = _backingFile;
            string? oldFormat = _extensions.BackingFormatName;
            _backingFile = name;
            _extensions.SetBackingFormat(format);
            try
            {
                WriteHeaderCluster();
            }
            catch
            {
                _backingFile = oldName;
                _extensions.SetBackingFormat(oldFormat);
                throw;
            }
            File.Flush();
        }
    }

    /// <summary>
    /// Records the seal in dse's header extension (<see cref="Qcow2HeaderExtensions.DseSeal"/>): one rewrite of the
    /// header area, as a relink does; no cluster, table or refcount changes, and qemu keeps the extension.
    /// </summary>
    public void SetSeal(SealReasons seal, SoleChild soleChild = default)
    {
        EnsureWritable("change the seal");
        if (seal == SealReasons.None || soleChild.Id == Guid.Empty) soleChild = SoleChild.Unknown; // the extension holds whole ids only
        lock (_sync)
        {
            var old = _extensions.Seal;
            if ((seal, soleChild) == old && _extensions.Find(Qcow2HeaderExtensions.DseSeal) is not null) return;
            bool had = _extensions.Find(Qcow2HeaderExtensions.DseSeal) is not null;
            _extensions.SetSeal(seal, soleChild);
            try
            {
                WriteHeaderCluster();
            }
            catch
            {
                if (had) _extensions.SetSeal(old.Seal, old.Sole);
                else _extensions.RemoveSeal();
                throw;
            }
            File.Flush();
        }
    }

    /// <summary>
    /// Gives the new image a rewrite made the header extensions this one carries that this engine does not interpret
    /// (qcow2.txt keeps unknown extensions), so that the rewrite does not drop them, and this one's compression type,
    /// so that its compressed clusters can be copied as stored.
    /// </summary>
    void IRewriteLoss.CarryOver(IDiskLayer rewritten)
    {
        if (rewritten is not Qcow2Layer target) return;
        target.KeepForeignExtensionsOf(this);
        target.KeepCompressionTypeOf(this);
    }

    private void KeepForeignExtensionsOf(Qcow2Layer original)
    {
        var foreign = original._extensions.Items.Where(e => !Qcow2HeaderExtensions.IsKnown(e.Type)).ToList();
        if (foreign.Count == 0) return;
        EnsureWritable("keep the original's header extensions");
        lock (_sync)
        {
            foreach (var e in foreign) _extensions.Keep(e);
            WriteHeaderCluster();
        }
    }

    private int HeaderAreaLength() => _header.HeaderLength + _extensions.SerializedLength + (_backingFile is null ? 0 : System.Text.Encoding.UTF8.GetByteCount(_backingFile));

    /// <summary>
    /// Rewrites the header cluster: header (unknown fields kept), every extension in order (unknown ones byte for byte),
    /// the end marker and the backing file name, as one write. Bytes the old layout used beyond the new one are zeroed.
    /// </summary>
    private void WriteHeaderCluster()
    {
        int length = HeaderAreaLength();
        if (length > _g.ClusterSize)
            ThrowHelper.InvalidArgument($"the header, its extensions and the backing file name need {length} bytes, more than the {_g.ClusterSize}-byte header cluster", Path);
        var buffer = new byte[Math.Max(length, _headerAreaEnd)];
        int at = _header.HeaderLength;
        at += _extensions.WriteTo(buffer.AsSpan(at));
        if (_backingFile is { } name)
        {
            int n = System.Text.Encoding.UTF8.GetBytes(name, buffer.AsSpan(at));
            _header.BackingFileOffset = (ulong)at;
            _header.BackingFileSize = (uint)n;
        }
        else
        {
            _header.BackingFileOffset = 0;
            _header.BackingFileSize = 0;
        }
        _header.Raw.CopyTo(buffer);
        File.Write(buffer, 0);
        _headerAreaEnd = length;
    }
}
