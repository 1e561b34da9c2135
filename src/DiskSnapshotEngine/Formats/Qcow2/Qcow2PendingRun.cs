using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Formats.Qcow2;

/// <summary>
/// Whole new clusters written one after the other (a clone, a merge, a pull) land in consecutive host clusters; they
/// are gathered here and reach the file as one large write instead of one per cluster. Their L2 entries change only
/// after that write (<see cref="Drain"/>), so no reader ever sees a mapping to data that is not in the file yet; the
/// layer drains before anything looks at these guest clusters. Callers hold the layer's lock.
/// A run whose clusters all come from one write call, one after the other in the caller's memory (a copy loop's piece),
/// is not copied at all: it borrows that memory and must be drained before the call returns (<see cref="IsBorrowed"/>).
/// </summary>
internal sealed unsafe class Qcow2PendingRun : IDisposable
{
    // Large enough that a direct write reaches the device in few requests (16 MiB beat 4 MiB here), small enough to pool.
    private const int Capacity = 16 << 20;
    private readonly long _clusterSize;
    private readonly List<(long Cluster, Qcow2L2Entry Old, Qcow2L2Entry New)> _entries = new();
    private AlignedBuffer? _buffer;
    private long _firstCluster, _hostStart;
    private byte* _borrowed;
    private int _borrower;

    public Qcow2PendingRun(long clusterSize) => _clusterSize = clusterSize;

    public bool IsEmpty => _entries.Count == 0;

    /// <summary>True when guest clusters [<paramref name="first"/>, <paramref name="last"/>] meet the pending ones.</summary>
    public bool Overlaps(long first, long last) => _entries.Count > 0 && first < _firstCluster + _entries.Count && last >= _firstCluster;

    /// <summary>True while the run's data is still in the memory of the write call that gave it (drain before it returns).</summary>
    public bool IsBorrowed => _borrowed is not null;

    /// <summary>
    /// Takes a whole cluster of data when it continues the run (next guest cluster, next host cluster) and fits.
    /// <paramref name="pinned"/>, when not null, is where <paramref name="data"/> lies for the rest of the current
    /// write call: a run started with it borrows that memory and takes only clusters that follow there, from the same call.
    /// </summary>
    public bool TryAppend(long cluster, long host, ReadOnlySpan<byte> data, Qcow2L2Entry old, Qcow2L2Entry now, byte* pinned = null)
    {
        if (data.Length != _clusterSize) return false;
        int n = _entries.Count;
        if (n > 0 && (cluster != _firstCluster + n || host != _hostStart + n * _clusterSize)) return false;
        if (n > 0 && _borrowed is not null)
        {
            if (pinned != _borrowed + n * _clusterSize || _borrower != Environment.CurrentManagedThreadId) return false;
        }
        else if (n == 0 && pinned is not null)
        {
            _borrowed = pinned;
            _borrower = Environment.CurrentManagedThreadId;
        }
        else
        {
            if (_clusterSize > Capacity || (n + 1) * _clusterSize > Capacity) return false;
            _buffer ??= AlignedBufferPool.Rent(Capacity);
            data.CopyTo(_buffer.Span[(int)(n * _clusterSize)..]);
        }
        if (n == 0)
        {
            _firstCluster = cluster;
            _hostStart = host;
        }
        _entries.Add((cluster, old, now));
        return true;
    }

    /// <summary>Writes the gathered data, then publishes the entries (in memory) through <paramref name="setEntry"/>.</summary>
    public void Drain(IImageFile file, Action<long, Qcow2L2Entry, Qcow2L2Entry> setEntry)
    {
        if (_entries.Count == 0) return;
        int length = (int)(_entries.Count * _clusterSize);
        file.Write(_borrowed is not null ? new ReadOnlySpan<byte>(_borrowed, length) : _buffer!.Span[..length], _hostStart);
        foreach (var (cluster, old, now) in _entries) setEntry(cluster, old, now);
        _entries.Clear();
        _borrowed = null;
    }

    /// <summary>Forgets a borrowed run whose write call is failing (its clusters stay allocated, a leak at worst).</summary>
    public void DropBorrowed()
    {
        if (_borrowed is null || _borrower != Environment.CurrentManagedThreadId) return;
        _entries.Clear();
        _borrowed = null;
    }

    /// <summary>Drops what was gathered (the layer is closing after a failure: the clusters stay allocated, a leak at worst).</summary>
    public void Dispose()
    {
        _entries.Clear();
        _borrowed = null;
        ((IDisposable?)_buffer)?.Dispose();
        _buffer = null;
    }
}
