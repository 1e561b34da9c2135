using System.Buffers.Binary;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Formats.Qcow2;

/// <summary>
/// qcow2.txt "Cluster mapping": the active L1 table, or an internal snapshot's for a read-only view (in memory, at most qemu's 32 MiB) and a bounded LRU cache of
/// L2 tables. Changes stay in memory until the layer commits them in crash-safe order: dirty L2 tables first
/// (<see cref="WriteDirtyL2"/>), then the L1 entries that point at new ones (<see cref="WriteDirtyL1"/>).
/// Dirty tables are never evicted; the layer commits before the cache fills with them. Callers hold the layer's lock.
/// </summary>
internal sealed class Qcow2Tables
{
    /// <summary>qemu refuses larger active L1 tables; so do we (it also bounds what a hostile header can make us allocate).</summary>
    public const long MaxL1Bytes = 32L << 20;
    /// <summary>Memory for cached L2 tables: 512 tables of 64 KiB map 256 GiB.</summary>
    private const long CacheBytes = 32L << 20;

    private sealed class Table
    {
        public required ulong[] Words;
        public bool Dirty;
        public LinkedListNode<long>? Node;
    }

    private readonly IImageFile _file;
    private readonly Qcow2Geometry _g;
    private readonly ulong[] _l1;
    private readonly long _l1Offset;
    private readonly string _l1Name;
    private readonly Dictionary<long, Table> _cache = new();
    private readonly LinkedList<long> _lru = new();
    private readonly int _capacity;
    private int _dirtyL1First = int.MaxValue, _dirtyL1Last = -1;
    private int _dirtyTables;
    private HashSet<long>? _l2Offsets;

    /// <summary>Tables over the L1 table read at <paramref name="l1Offset"/>, named <paramref name="l1Name"/> in errors ("L1 table", or a snapshot's).</summary>
    public Qcow2Tables(IImageFile file, Qcow2Geometry geometry, ulong[] l1, long l1Offset, string l1Name = "L1 table")
    {
        _l1Name = l1Name;
        _file = file;
        _g = geometry;
        _l1 = l1;
        _l1Offset = l1Offset;
        _capacity = (int)Math.Max(16, CacheBytes / geometry.ClusterSize);
    }

    /// <summary>Reads and validates the L1 table (the header checks bounded its size and placed it inside the file).</summary>
    public static ulong[] ReadL1(IImageFile file, long offset, uint size)
    {
        var words = new ulong[size];
        ReadWords(file, offset, words, "L1 table");
        return words;
    }

    public int DirtyTables => _dirtyTables;
    public bool HasDirtyL1 => _dirtyL1Last >= 0;
    public bool CacheNearlyFullOfDirty => _dirtyTables >= _capacity / 2;
    public IReadOnlyList<ulong> L1 => _l1;

    /// <summary>True when an L2 table covers guest cluster <paramref name="cluster"/> (else its whole L2 range is unallocated).</summary>
    public bool HasL2(long cluster) => (L1At(cluster / _g.L2Entries) & Qcow2L2Entry.OffsetMask) != 0;

    // An internal snapshot's L1 table may be shorter than its disk needs: past its end, as qemu reads it, nothing is allocated.
    // The active table always covers the disk (the header checks), so writes never index past it.
    private ulong L1At(long index) => index < _l1.Length ? _l1[index] : 0;

    /// <summary>True when host offset <paramref name="offset"/> holds an active L2 table.</summary>
    public bool IsL2Table(long offset) => L2Offsets.Contains(offset);

    /// <summary>Throws CorruptImage when two L1 entries name one L2 table (a write through one would change both).</summary>
    public void CheckL2TablesDistinct() => _ = L2Offsets;

    // Built on first use, for writers only, and kept current as tables are added.
    private HashSet<long> L2Offsets => _l2Offsets ??= CollectL2Offsets();

    private HashSet<long> CollectL2Offsets() =>
        DistinctOffsets(_l1, _g.Path, "L1 table", _l1Offset, (i, offset) => $"L1 entry {i} names the L2 table at {offset}, which an earlier entry names too");

    /// <summary>
    /// The cluster offsets a table's entries name (L1: L2 tables, refcount table: blocks); CorruptImage when one is
    /// named twice, since an update through one entry would then change what the other maps.
    /// </summary>
    internal static HashSet<long> DistinctOffsets(ulong[] entries, string path, string structure, long tableOffset, Func<int, long, string> twice)
    {
        var set = new HashSet<long>();
        for (int i = 0; i < entries.Length; i++)
        {
            long offset = (long)(entries[i] & Qcow2L2Entry.OffsetMask);
            if (offset != 0 && !set.Add(offset)) ThrowHelper.Corrupt(path, structure, tableOffset + i * 8L, twice(i, offset));
        }
        return set;
    }

    /// <summary>The entry of virtual cluster <paramref name="cluster"/> (all zeros when no L2 table maps it).</summary>
    public Qcow2L2Entry Get(long cluster)
    {
        long l1Index = cluster / _g.L2Entries;
        var table = Load(l1Index);
        if (table is null) return default;
        int i = (int)(cluster % _g.L2Entries);
        return _g.ExtendedL2 ? new Qcow2L2Entry(table.Words[2 * i], table.Words[2 * i + 1]) : new Qcow2L2Entry(table.Words[i], 0);
    }

    /// <summary>File offset of a cluster's L2 entry, for error messages (null when no L2 table maps it).</summary>
    public long? EntryOffset(long cluster)
    {
        long l2 = (long)(L1At(cluster / _g.L2Entries) & Qcow2L2Entry.OffsetMask);
        return l2 == 0 ? null : l2 + (cluster % _g.L2Entries) * _g.EntryBytes;
    }

    /// <summary>Changes an entry in memory; a missing L2 table is created with <paramref name="allocateCluster"/> (which sets its refcount).</summary>
    public void Set(long cluster, Qcow2L2Entry entry, Func<long> allocateCluster)
    {
        if (entry.IsUnused && !HasL2(cluster)) return;
        var table = EnsureL2Table(cluster, allocateCluster);
        int i = (int)(cluster % _g.L2Entries);
        if (_g.ExtendedL2)
        {
            table.Words[2 * i] = entry.Entry;
            table.Words[2 * i + 1] = entry.Bitmap;
        }
        else table.Words[i] = entry.Entry;
        if (!table.Dirty)
        {
            table.Dirty = true;
            _dirtyTables++;
        }
    }

    /// <summary>
    /// The L2 table that maps guest cluster <paramref name="cluster"/>, created empty with
    /// <paramref name="allocateCluster"/> when there is none (so a caller can take it before a run of data clusters,
    /// which then stay contiguous in the file). An empty table maps nothing: committing it alone changes no content.
    /// </summary>
    public void EnsureL2(long cluster, Func<long> allocateCluster) => _ = EnsureL2Table(cluster, allocateCluster);

    private Table EnsureL2Table(long cluster, Func<long> allocateCluster)
    {
        long l1Index = cluster / _g.L2Entries;
        if (Load(l1Index) is { } table) return table;
        long offset = allocateCluster();
        table = new Table { Words = new ulong[_g.ClusterSize / 8], Dirty = true };
        _dirtyTables++;
        Insert(offset, table);
        _l2Offsets?.Add(offset);
        _l1[l1Index] = Qcow2L2Entry.Data(offset);
        _dirtyL1First = Math.Min(_dirtyL1First, (int)l1Index);
        _dirtyL1Last = Math.Max(_dirtyL1Last, (int)l1Index);
        return table;
    }

    private Table? Load(long l1Index)
    {
        long offset = (long)(L1At(l1Index) & Qcow2L2Entry.OffsetMask);
        if (offset == 0) return null;
        if (_cache.TryGetValue(offset, out var hit))
        {
            _lru.Remove(hit.Node!);
            _lru.AddFirst(hit.Node!);
            return hit;
        }
        long at = _l1Offset + l1Index * 8;
        _g.CheckTableCluster(offset, $"L2 table of L1 entry {l1Index}", _l1Name, at);
        if (offset > _file.Length - _g.ClusterSize)
            ThrowHelper.Corrupt(_g.Path, _l1Name, at, $"L1 entry {l1Index} points at an L2 table at {offset}, past the end of the file at {_file.Length}");
        var table = new Table { Words = new ulong[_g.ClusterSize / 8] };
        ReadWords(_file, offset, table.Words, "L2 table");
        Insert(offset, table);
        return table;
    }

    private void Insert(long offset, Table table)
    {
        if (_cache.Count >= _capacity)
        {
            // Evict the least recently used clean table; dirty ones wait for the next commit.
            for (var n = _lru.Last; n is not null; n = n.Previous)
            {
                if (_cache[n.Value].Dirty) continue;
                _cache.Remove(n.Value);
                _lru.Remove(n);
                break;
            }
        }
        table.Node = _lru.AddFirst(offset);
        _cache[offset] = table;
    }

    /// <summary>Writes every dirty L2 table (whole clusters); the caller flushes before any L1 entry points at a new one.</summary>
    public void WriteDirtyL2()
    {
        if (_dirtyTables == 0) return;
        var bytes = new byte[_g.ClusterSize];
        foreach (var (offset, table) in _cache.OrderBy(kv => kv.Key))
        {
            if (!table.Dirty) continue;
            for (int i = 0; i < table.Words.Length; i++) BinaryPrimitives.WriteUInt64BigEndian(bytes.AsSpan(i * 8), table.Words[i]);
            _file.Write(bytes, offset);
            table.Dirty = false;
        }
        _dirtyTables = 0;
    }

    /// <summary>Writes the changed L1 entries as one range.</summary>
    public void WriteDirtyL1()
    {
        if (_dirtyL1Last < 0) return;
        int n = _dirtyL1Last - _dirtyL1First + 1;
        var bytes = new byte[n * 8];
        for (int i = 0; i < n; i++) BinaryPrimitives.WriteUInt64BigEndian(bytes.AsSpan(i * 8), _l1[_dirtyL1First + i]);
        _file.Write(bytes, _l1Offset + _dirtyL1First * 8L);
        _dirtyL1First = int.MaxValue;
        _dirtyL1Last = -1;
    }

    /// <summary>Reads big-endian 64-bit words (L1, L2 and refcount tables).</summary>
    public static void ReadWords(IImageFile file, long offset, ulong[] words, string structure)
    {
        const int Chunk = 1 << 16;
        var bytes = new byte[Math.Min(Chunk, words.Length * 8)];
        for (int first = 0; first < words.Length; first += Chunk / 8)
        {
            int n = Math.Min(Chunk / 8, words.Length - first);
            file.ReadExactly(bytes.AsSpan(0, n * 8), offset + first * 8L, structure);
            for (int i = 0; i < n; i++) words[first + i] = BinaryPrimitives.ReadUInt64BigEndian(bytes.AsSpan(i * 8));
        }
    }
}
