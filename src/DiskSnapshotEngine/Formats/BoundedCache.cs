namespace DiskSnapshotEngine.Formats;

/// <summary>
/// A first-in-first-out cache of pieces of a file read on demand (block table pages, sector bitmaps), bounded in entries
/// so that memory stays fixed whatever sizes the file claims. Thread-safe: concurrent readers share it.
/// </summary>
internal sealed class BoundedCache<TKey, TValue> where TKey : notnull
{
    private readonly int _capacity;
    private readonly Dictionary<TKey, TValue> _entries = new();
    private readonly Queue<TKey> _order = new();
    private readonly object _lock = new();

    public BoundedCache(int capacity) => _capacity = Math.Max(1, capacity);

    /// <summary>The cached value, or the one <paramref name="load"/> returns (called outside the lock), then cached.</summary>
    public TValue GetOrLoad(TKey key, Func<TKey, TValue> load)
    {
        lock (_lock)
        {
            if (_entries.TryGetValue(key, out var cached)) return cached;
        }
        var value = load(key);
        Set(key, value);
        return value;
    }

    /// <summary>Caches <paramref name="value"/> under <paramref name="key"/>, evicting the oldest entry when full.</summary>
    public void Set(TKey key, TValue value)
    {
        lock (_lock)
        {
            if (!_entries.ContainsKey(key))
            {
                if (_entries.Count >= _capacity) _entries.Remove(_order.Dequeue());
                _order.Enqueue(key);
            }
            _entries[key] = value;
        }
    }

    /// <summary>Applies <paramref name="update"/> to the cached value, if there is one.</summary>
    public void Update(TKey key, Action<TValue> update)
    {
        lock (_lock)
        {
            if (_entries.TryGetValue(key, out var value)) update(value);
        }
    }
}
