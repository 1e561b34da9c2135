using System.Buffers.Binary;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Formats.Qcow2;

/// <summary>
/// qcow2.txt "Host cluster management": the refcount table (in memory, at most qemu's 8 MiB) and a bounded cache
/// of refcount blocks, entries of any width from 1 to 64 bits. Allocation takes the first cluster with refcount 0
/// at or past the end of the file, so a new cluster never lands on anything an older header or table still names.
/// Frees are only recorded: they are applied after the L2 change that drops the reference is on disk
/// (<see cref="ApplyFrees"/>), so a crash leaks a cluster at worst. Callers hold the layer's lock.
/// </summary>
internal sealed class Qcow2Refcounts
{
    public const long MaxTableBytes = 8L << 20;
    private const long CacheBytes = 16L << 20;

    private sealed class Block
    {
        public required byte[] Data;
        public bool Dirty;
    }

    private readonly IImageFile _file;
    private readonly Qcow2Geometry _g;
    private ulong[] _table;
    private long _tableOffset;
    private readonly Dictionary<long, Block> _blocks = new();
    private readonly Queue<long> _order = new();
    private readonly int _capacity;
    private readonly HashSet<long> _dirtyTableEntries = new();
    private readonly List<long> _pendingFrees = new();
    private long _nextFree = -1;
    private int _dirtyBlocks;
    private HashSet<long>? _blockOffsets;

    public Qcow2Refcounts(IImageFile file, Qcow2Geometry geometry, long tableOffset, uint tableClusters)
    {
        _file = file;
        _g = geometry;
        _tableOffset = tableOffset;
        _table = new ulong[tableClusters * geometry.ClusterSize / 8];
        Qcow2Tables.ReadWords(file, tableOffset, _table, "refcount table");
        _capacity = (int)Math.Max(16, CacheBytes / geometry.ClusterSize);
    }

    public long TableOffset => _tableOffset;
    public uint TableClusters => (uint)(_table.Length * 8L / _g.ClusterSize);
    public int TableLength => _table.Length;
    public ulong TableEntry(long index) => _table[index];

    /// <summary>Set when the table was moved to a larger place: the header must name the new one (old clusters, to free after it does).</summary>
    public (long Offset, uint Clusters)? MovedFrom { get; private set; }

    public bool HasDirtyBlocks => _dirtyBlocks > 0;
    public bool HasDirtyTable => _dirtyTableEntries.Count > 0 || MovedFrom is not null;
    public bool HasPendingFrees => _pendingFrees.Count > 0;
    public bool NearlyFullOfDirty => _dirtyBlocks >= _capacity / 2;

    public ulong MaxValue => _g.RefcountBits == 64 ? ulong.MaxValue : (1UL << _g.RefcountBits) - 1;

    /// <summary>True when host offset <paramref name="offset"/> holds a refcount block.</summary>
    public bool IsBlock(long offset) => BlockOffsets.Contains(offset);

    /// <summary>
    /// Throws CorruptImage when two table entries name one refcount block, or a block is also an L2 table
    /// (<paramref name="isL2Table"/>): an update of one would change the other.
    /// </summary>
    public void CheckBlocksDistinct(Func<long, bool> isL2Table)
    {
        _ = BlockOffsets; // duplicates first
        for (int i = 0; i < _table.Length; i++)
        {
            long offset = (long)(_table[i] & Qcow2L2Entry.OffsetMask);
            if (offset != 0 && isL2Table(offset))
                ThrowHelper.Corrupt(_g.Path, "refcount table", _tableOffset + i * 8L, $"refcount block {i} at {offset} is also an L2 table");
        }
    }

    // Built on first use, for writers only, and kept current as blocks are added.
    private HashSet<long> BlockOffsets => _blockOffsets ??= CollectBlockOffsets();

    private HashSet<long> CollectBlockOffsets() =>
        Qcow2Tables.DistinctOffsets(_table, _g.Path, "refcount table", _tableOffset, (i, offset) => $"refcount block {i} at {offset} is named by an earlier entry too");

    /// <summary>Refcount of host cluster <paramref name="cluster"/> (0 past the table or in a missing block).</summary>
    public ulong Get(long cluster)
    {
        var block = BlockFor(cluster, create: false);
        return block is null ? 0 : Read(block.Data, cluster % _g.RefcountsPerBlock);
    }

    /// <summary>Sets a refcount in memory (the block must exist or be creatable in the table).</summary>
    public void Set(long cluster, ulong value)
    {
        var block = BlockFor(cluster, create: true)!;
        Write(block.Data, cluster % _g.RefcountsPerBlock, value);
        MarkDirty(block);
    }

    private void MarkDirty(Block block)
    {
        if (block.Dirty) return;
        block.Dirty = true;
        _dirtyBlocks++;
    }

    /// <summary>Finds a free cluster at or past the end of the file, gives it refcount 1 and returns its file offset.</summary>
    public long Allocate()
    {
        if (_nextFree < 0) _nextFree = (_file.Length + _g.ClusterSize - 1) >> _g.ClusterBits;
        while (true)
        {
            long c = _nextFree;
            long index = c / _g.RefcountsPerBlock;
            if (index >= _table.Length)
            {
                Grow(c);
                continue;
            }
            if ((_table[index] & Qcow2L2Entry.OffsetMask) == 0)
            {
                // A new refcount block goes at the cluster that needs it, so it counts itself.
                NewBlock(index, c);
                _nextFree = c + 1;
                continue;
            }
            if (Get(c) != 0)
            {
                _nextFree++;
                continue;
            }
            Set(c, 1);
            _nextFree = c + 1;
            return c << _g.ClusterBits;
        }
    }

    /// <summary>
    /// Allocates up to <paramref name="max"/> consecutive free clusters at once (as <see cref="Allocate"/> does the
    /// first): the run stops where the next cluster is in use or needs a refcount block or table space of its own,
    /// which the next call then makes. Returns the file offset of the first cluster and how many were taken.
    /// </summary>
    public (long Offset, int Count) AllocateRun(int max)
    {
        long first = Allocate() >> _g.ClusterBits;
        int n = 1;
        for (long c = first + 1; n < max; c++, n++)
        {
            long index = c / _g.RefcountsPerBlock;
            if (index >= _table.Length || (_table[index] & Qcow2L2Entry.OffsetMask) == 0 || Get(c) != 0) break;
            Set(c, 1);
        }
        _nextFree = first + n;
        return (first << _g.ClusterBits, n);
    }

    private void NewBlock(long index, long cluster)
    {
        var block = new Block { Data = new byte[_g.ClusterSize] };
        Cache(index, block);
        MarkDirty(block);
        _table[index] = (ulong)(cluster << _g.ClusterBits);
        _blockOffsets?.Add(cluster << _g.ClusterBits);
        _dirtyTableEntries.Add(index);
        Write(block.Data, cluster % _g.RefcountsPerBlock, 1);
    }

    /// <summary>
    /// The table is full: a larger one goes at <paramref name="cluster"/>, followed by the new refcount blocks that
    /// count it, with room to spare. The header is rewritten to name it at the next commit; the old table is freed after.
    /// </summary>
    private void Grow(long cluster)
    {
        long perTableCluster = _g.ClusterSize / 8;
        long tableClusters = TableClusters, blocks = 0;
        for (int round = 0; round < 64; round++)
        {
            long lastIndex = (cluster + tableClusters + blocks - 1) / _g.RefcountsPerBlock;
            long wanted = Math.Max(TableClusters + 1, (lastIndex + 1 + perTableCluster - 1) / perTableCluster * 3 / 2);
            long firstIndex = cluster / _g.RefcountsPerBlock;
            long newBlocks = 0;
            for (long i = firstIndex; i <= lastIndex; i++)
                if (i >= _table.Length || (_table[i] & Qcow2L2Entry.OffsetMask) == 0) newBlocks++;
            if (wanted == tableClusters && newBlocks == blocks) break;
            tableClusters = Math.Max(tableClusters, wanted);
            blocks = newBlocks;
        }
        if (tableClusters * _g.ClusterSize > MaxTableBytes)
            throw new DiskImageException(ErrorKind.Unsupported,
                $"the refcount table would grow past {MaxTableBytes >> 20} MiB (qemu's limit): the image file is too large for its cluster size", _g.Path, "refcount table");
        var old = (_tableOffset, TableClusters);
        var table = new ulong[tableClusters * perTableCluster];
        _table.CopyTo(table, 0);
        _table = table;
        _tableOffset = cluster << _g.ClusterBits;
        long next = cluster + tableClusters;
        for (long i = cluster / _g.RefcountsPerBlock; i <= (cluster + tableClusters + blocks - 1) / _g.RefcountsPerBlock; i++)
        {
            if ((_table[i] & Qcow2L2Entry.OffsetMask) != 0) continue;
            var block = new Block { Data = new byte[_g.ClusterSize] };
            Cache(i, block);
            MarkDirty(block);
            _blockOffsets?.Add(next << _g.ClusterBits);
            _table[i] = (ulong)(next++ << _g.ClusterBits);
        }
        for (long c = cluster; c < next; c++) Set(c, 1);
        MovedFrom ??= old;
        _nextFree = next;
        _g.Reserved.RemoveAll(r => r.Name == "refcount table");
        _g.Reserved.Add((_tableOffset, tableClusters * _g.ClusterSize, "refcount table"));
    }

    /// <summary>Records that one reference to host cluster <paramref name="cluster"/> goes away (applied by <see cref="ApplyFrees"/>).</summary>
    public void Free(long cluster) => _pendingFrees.Add(cluster);

    /// <summary>Applies the recorded frees in memory; the caller writes the blocks next.</summary>
    public void ApplyFrees()
    {
        foreach (long c in _pendingFrees)
        {
            ulong v = Get(c);
            if (v == 0)
                ThrowHelper.Corrupt(_g.Path, "refcount block", null, $"host cluster {c} is freed but its refcount is already 0");
            Set(c, v - 1);
        }
        _pendingFrees.Clear();
    }

    public void WriteDirtyBlocks()
    {
        foreach (var (index, block) in _blocks.OrderBy(kv => kv.Key))
        {
            if (!block.Dirty) continue;
            _file.Write(block.Data, (long)(_table[index] & Qcow2L2Entry.OffsetMask));
            block.Dirty = false;
        }
        _dirtyBlocks = 0;
    }

    /// <summary>Writes the changed table entries, or the whole table after a move.</summary>
    public void WriteTable()
    {
        if (MovedFrom is not null)
        {
            var bytes = new byte[_table.Length * 8];
            for (int i = 0; i < _table.Length; i++) BinaryPrimitives.WriteUInt64BigEndian(bytes.AsSpan(i * 8), _table[i]);
            _file.Write(bytes, _tableOffset);
        }
        else
        {
            Span<byte> b = stackalloc byte[8];
            foreach (long i in _dirtyTableEntries.Order())
            {
                BinaryPrimitives.WriteUInt64BigEndian(b, _table[i]);
                _file.Write(b, _tableOffset + i * 8);
            }
        }
        _dirtyTableEntries.Clear();
    }

    /// <summary>After the header names the new table: its old clusters are freed (through the normal deferred path).</summary>
    public void TableMoveCommitted()
    {
        if (MovedFrom is not { } old) return;
        for (long c = 0; c < old.Clusters; c++) Free((old.Offset >> _g.ClusterBits) + c);
        MovedFrom = null;
    }

    private Block? BlockFor(long cluster, bool create)
    {
        long index = cluster / _g.RefcountsPerBlock;
        if (index >= _table.Length)
        {
            if (!create) return null;
            ThrowHelper.Corrupt(_g.Path, "refcount table", _tableOffset, $"host cluster {cluster} is past what the refcount table of {_table.Length} entries covers");
        }
        if (_blocks.TryGetValue(index, out var hit)) return hit;
        long offset = (long)(_table[index] & Qcow2L2Entry.OffsetMask);
        if (offset == 0)
        {
            if (!create) return null;
            ThrowHelper.Corrupt(_g.Path, "refcount table", _tableOffset + index * 8, $"host cluster {cluster} has no refcount block");
        }
        long at = _tableOffset + index * 8;
        _g.CheckTableCluster(offset, $"refcount block {index}", "refcount table", at);
        if (offset > _file.Length - _g.ClusterSize)
            ThrowHelper.Corrupt(_g.Path, "refcount table", at, $"refcount block {index} at {offset} lies past the end of the file at {_file.Length}");
        var block = new Block { Data = new byte[_g.ClusterSize] };
        _file.ReadExactly(block.Data, offset, "refcount block");
        Cache(index, block);
        return block;
    }

    private void Cache(long index, Block block)
    {
        if (_blocks.Count >= _capacity)
        {
            // Evict the oldest clean block; dirty ones stay until written.
            for (int n = _order.Count; n > 0; n--)
            {
                long victim = _order.Dequeue();
                if (_blocks.TryGetValue(victim, out var b) && !b.Dirty)
                {
                    _blocks.Remove(victim);
                    break;
                }
                _order.Enqueue(victim);
            }
        }
        _blocks[index] = block;
        _order.Enqueue(index);
    }

    // Entries narrower than a byte are packed from the least significant bit; wider ones are big-endian.
    private ulong Read(byte[] data, long i)
    {
        int bits = _g.RefcountBits;
        if (bits < 8)
        {
            long bit = i * bits;
            return (ulong)((data[bit >> 3] >> (int)(bit & 7)) & ((1 << bits) - 1));
        }
        var s = data.AsSpan((int)(i * (bits / 8)));
        return bits switch
        {
            8 => s[0],
            16 => BinaryPrimitives.ReadUInt16BigEndian(s),
            32 => BinaryPrimitives.ReadUInt32BigEndian(s),
            _ => BinaryPrimitives.ReadUInt64BigEndian(s),
        };
    }

    private void Write(byte[] data, long i, ulong value)
    {
        int bits = _g.RefcountBits;
        if (value > MaxValue)
            ThrowHelper.Corrupt(_g.Path, "refcount block", null, $"refcount {value} does not fit in {bits} bits");
        if (bits < 8)
        {
            long bit = i * bits;
            int mask = ((1 << bits) - 1) << (int)(bit & 7);
            data[bit >> 3] = (byte)((data[bit >> 3] & ~mask) | ((int)value << (int)(bit & 7)));
            return;
        }
        var s = data.AsSpan((int)(i * (bits / 8)));
        switch (bits)
        {
            case 8: s[0] = (byte)value; break;
            case 16: BinaryPrimitives.WriteUInt16BigEndian(s, (ushort)value); break;
            case 32: BinaryPrimitives.WriteUInt32BigEndian(s, (uint)value); break;
            default: BinaryPrimitives.WriteUInt64BigEndian(s, value); break;
        }
    }

    /// <summary>Clusters with a refcount above 0 (what the image allocates), or null when that would mean reading more than <paramref name="maxBlocks"/> blocks.</summary>
    public long? CountAllocated(int maxBlocks)
    {
        long used = 0;
        int blocks = 0;
        for (long i = 0; i < _table.Length; i++)
        {
            if ((_table[i] & Qcow2L2Entry.OffsetMask) == 0) continue;
            if (++blocks > maxBlocks) return null;
            for (long c = i * _g.RefcountsPerBlock; c < (i + 1) * _g.RefcountsPerBlock; c++)
                if (Get(c) != 0) used++;
        }
        return used;
    }
}
