using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;

namespace DiskSnapshotEngine.Formats.Qcow2;

// Placement (IPlaceableLayer): runs of host clusters reserved for bytes another call puts there (shared extents,
// copy_file_range). A fresh run is taken in one allocation (its L2 table first, so the data clusters stay contiguous
// and one FICLONERANGE covers them); its L2 entries wait in _placed until that data is in the file (the caller's
// contract: by the next TryPlace or Flush, or before anything touches those guest clusters), then go through the
// normal commit: refcount blocks, flush (data included), L2, flush, L1. A crash before that leaks the run at worst.
internal sealed partial class Qcow2Layer : IPlaceableLayer
{
    // Placed runs not yet in the L2 tables: guest cluster, host offset, clusters.
    private readonly List<(long Cluster, long Host, int Count)> _placed = new();
    // Clusters a fresh run may take: one at first, doubling with each placement. A caller asks again only after its
    // last placement was filled, so where the file system shares nothing (the first fill fails and the caller copies,
    // skipping zeros) at most one cluster is allocated that a plain copy would have left out.
    private int _runLimit = 1;

    bool IPlaceableLayer.TryPlace(long offset, long length, out long fileOffset, out long placed)
    {
        EnsureWritable("write");
        if (length <= 0) ThrowHelper.OutOfBounds(Path, offset, length, VirtualSize);
        CheckRange(offset, length);
        (fileOffset, placed) = (-1, 0);
        // Subclusters would need their bitmaps set per range; such targets take the data through Write.
        if (_g.ExtendedL2) return false;
        BeginWrite();
        lock (_sync)
        {
            // What was placed before is filled by now: publish it, and commit when a batch is full.
            DrainPending();
            if (_allocatedSinceCommit >= CommitEvery || _tables.CacheNearlyFullOfDirty || Refcounts.NearlyFullOfDirty) Commit();
            long cluster = offset >> _g.ClusterBits;
            long clusterStart = cluster << _g.ClusterBits;
            long end = offset + length;
            var e = _tables.Get(cluster);
            if (InPlace(clusterStart))
            {
                // A cluster of our own takes the bytes where they are; so does each next one whose host follows.
                long host = e.HostOffset, n = 1;
                while (clusterStart + (n << _g.ClusterBits) < end
                       && InPlace(clusterStart + (n << _g.ClusterBits)) && _tables.Get(cluster + n).HostOffset == host + (n << _g.ClusterBits))
                    n++;
                fileOffset = host + (offset - clusterStart);
                placed = Math.Min(end, clusterStart + (n << _g.ClusterBits)) - offset;
                return true;
            }
            if (e.IsCompressed || e.HostOffset != 0) return false;
            // Fresh clusters read as zeros: right for a base image's unallocated cluster and for a zero cluster, not for
            // the part of a child's unallocated cluster that must keep showing its backing file.
            int count = FreshClusters(cluster, offset, end, _runLimit);
            if (count == 0) return false;
            _tables.EnsureL2(cluster, () => { _allocatedSinceCommit++; return Refcounts.Allocate(); });
            var (hostStart, got) = Refcounts.AllocateRun(count);
            _allocatedSinceCommit += got;
            for (int i = 0; i < got; i++)
                _g.CheckDataCluster(hostStart + ((long)i << _g.ClusterBits), "refcount block", null);
            long hostEnd = hostStart + ((long)got << _g.ClusterBits);
            if (File.Length < hostEnd) File.SetLength(hostEnd);
            _placed.Add((cluster, hostStart, got));
            _runLimit = Math.Min(_runLimit * 2, _g.L2Entries);
            fileOffset = hostStart + (offset - clusterStart);
            placed = Math.Min(end, clusterStart + ((long)got << _g.ClusterBits)) - offset;
            return true;
        }
    }

    // How many clusters (at most `max`) from `cluster` may get fresh host clusters for the bytes [offset, end): unallocated or zero
    // clusters of the same L2 table, the first and last whole unless a fresh cluster's zeros are what they show.
    private int FreshClusters(long cluster, long offset, long end, int max)
    {
        long tableEnd = (cluster / _g.L2Entries + 1) * _g.L2Entries;
        int count = 0;
        for (long c = cluster; c < tableEnd && count < max && (c << _g.ClusterBits) < end; c++)
        {
            var e = _tables.Get(c);
            if (e.IsCompressed || e.HostOffset != 0 || IsPlaced(c)) break;
            long start = c << _g.ClusterBits;
            long clusterEnd = Math.Min(_g.VirtualSize, start + _g.ClusterSize);
            bool whole = offset <= start && end >= clusterEnd;
            bool showsBacking = HasBacking && !(e.HasZeroFlag && _header.Version >= 3);
            if (!whole && showsBacking) break;
            count++;
            if (end < clusterEnd) break;
        }
        return count;
    }

    private bool IsPlaced(long cluster)
    {
        foreach (var (first, _, count) in _placed)
            if (cluster >= first && cluster < first + count) return true;
        return false;
    }

    private bool PlacedOverlaps(long first, long last)
    {
        foreach (var (c, _, count) in _placed)
            if (first < c + count && last >= c) return true;
        return false;
    }

    /// <summary>Puts the placed runs (their data is in the file by now) into the L2 tables, in memory.</summary>
    private void PublishPlaced()
    {
        foreach (var (first, host, count) in _placed)
            for (int i = 0; i < count; i++)
            {
                long c = first + i;
                SetEntry(c, _tables.Get(c), new Qcow2L2Entry(Qcow2L2Entry.Data(host + ((long)i << _g.ClusterBits)), 0));
            }
        _placed.Clear();
    }
}
