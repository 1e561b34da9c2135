using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Formats.Qcow2;

/// <summary>
/// Whole new clusters written one after the other (a clone, a merge, a pull) land in consecutive host clusters; they
/// are gathered here and reach the file as one large write instead of one per cluster. Their L2 entries change only
/// after that write (<see cref="Drain"/>), so no reader ever sees a mapping to data that is not in the file yet; the
/// layer drains before anything looks at these guest clusters. Callers hold the layer's lock.
/// </summary>
internal sealed class Qcow2PendingRun : IDisposable
{
    // Large enough that a direct write reaches the device in few requests (16 MiB beat 4 MiB here), small enough to pool.
    private const int Capacity = 16 << 20;
    private readonly long _clusterSize;
    private readonly List<(long Cluster, Qcow2L2Entry Old, Qcow2L2Entry New)> _entries = new();
    private AlignedBuffer? _buffer;
    private long _firstCluster, _hostStart;

    public Qcow2PendingRun(long clusterSize) => _clusterSize = clusterSize;

    public bool IsEmpty => _entries.Count == 0;

    /// <summary>True when guest clusters [<paramref name="first"/>, <paramref name="last"/>] meet the pending ones.</summary>
    public bool Overlaps(long first, long last) => _entries.Count > 0 && first < _firstCluster + _entries.Count && last >= _firstCluster;

    /// <summary>Takes a whole cluster of data when it continues the run (next guest cluster, next host cluster) and fits.</summary>
    public bool TryAppend(long cluster, long host, ReadOnlySpan<byte> data, Qcow2L2Entry old, Qcow2L2Entry now)
    {
        if (data.Length != _clusterSize || _clusterSize > Capacity) return false;
        int n = _entries.Count;
        if (n > 0 && (cluster != _firstCluster + n || host != _hostStart + n * _clusterSize || (n + 1) * _clusterSize > Capacity)) return false;
        _buffer ??= AlignedBufferPool.Rent(Capacity);
        if (n == 0)
        {
            _firstCluster = cluster;
            _hostStart = host;
        }
        data.CopyTo(_buffer.Span[(int)(n * _clusterSize)..]);
        _entries.Add((cluster, old, now));
        return true;
    }

    /// <summary>Writes the gathered data, then publishes the entries (in memory) through <paramref name="setEntry"/>.</summary>
    public void Drain(IImageFile file, Action<long, Qcow2L2Entry, Qcow2L2Entry> setEntry)
    {
        if (_entries.Count == 0) return;
        file.Write(_buffer!.Span[..(int)(_entries.Count * _clusterSize)], _hostStart);
        foreach (var (cluster, old, now) in _entries) setEntry(cluster, old, now);
        _entries.Clear();
    }

    /// <summary>Drops what was gathered (the layer is closing after a failure: the clusters stay allocated, a leak at worst).</summary>
    public void Dispose()
    {
        _entries.Clear();
        ((IDisposable?)_buffer)?.Dispose();
        _buffer = null;
    }
}
