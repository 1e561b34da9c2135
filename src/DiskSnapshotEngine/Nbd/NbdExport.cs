using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Nbd;

/// <summary>A run of a read piece: bytes that are data (in the buffer) or a hole (read as zeros, not in the buffer).</summary>
/// <param name="Start">Offset of the run from the start of the piece.</param>
/// <param name="Length">Bytes.</param>
/// <param name="IsHole">True when the run reads as zeros and its bytes were not filled in.</param>
internal readonly record struct NbdRun(int Start, int Length, bool IsHole);

/// <summary>One base:allocation descriptor of a block status reply.</summary>
/// <param name="Length">Bytes.</param>
/// <param name="Flags">NBD_STATE_HOLE | NBD_STATE_ZERO for ranges that read as zeros without data, 0 for data.</param>
internal record struct NbdExtent(uint Length, uint Flags);

/// <summary>
/// The export behind the protocol: the chain's own read, map, write, zero and flush, and nothing that knows a format.
/// Reads and map queries run concurrently under a shared lock; writes, zeroing and flushes hold it exclusively, because
/// layers are not thread-safe for writes and a read must not see a write half-applied. Writes go to the top layer with
/// copy-on-write exactly as <see cref="DiskChain.Write"/> does; parents are never written.
/// </summary>
internal sealed class NbdExport : IDisposable
{
    /// <summary>Zero runs shorter than this are sent as data: a hole chunk costs as much as a few KiB of zeros.</summary>
    public const int MinHole = 64 << 10;

    /// <summary>Runs a piece can have: holes are at least <see cref="MinHole"/> long and alternate with data.</summary>
    public const int MaxRuns = 2 * (NbdRequestRules.PieceSize / MinHole) + 2;

    /// <summary>Chain extents one block status query examines at most (a reply may cover less than asked).</summary>
    private const int MaxExtentsPerQuery = 1 << 16;

    // The lock is held per piece, so a long zeroing does not starve readers for its whole length.
    private const long ZeroStep = 64L << 20;

    private readonly DiskChain _chain;
    private readonly ReaderWriterLockSlim _lock = new(LockRecursionPolicy.NoRecursion);

    public NbdExport(DiskChain chain, string name)
    {
        _chain = chain;
        var top = chain.Top;
        uint preferred = (uint)Math.Max(4096, top.PhysicalSectorSize);
        Info = new NbdExportInfo(name, $"{top.Path} ({top.Format.Name()}, {chain.Layers.Count} layer(s))", chain.VirtualSize,
            !top.IsWritable, preferred);
    }

    /// <summary>What the handshake announces.</summary>
    public NbdExportInfo Info { get; }

    /// <summary>
    /// Reads <paramref name="data"/>.Length bytes at <paramref name="offset"/>. Data runs are read straight from the
    /// layer files into <paramref name="data"/> (encoded ones decoded by their layer); runs that read as zeros are left as holes (described in
    /// <paramref name="runs"/>) unless <paramref name="fillHoles"/>, or they are too short to be worth a chunk.
    /// </summary>
    /// <returns>The number of runs written to <paramref name="runs"/>, in order, covering the piece.</returns>
    public int ReadPiece(long offset, Span<byte> data, Span<NbdRun> runs, bool fillHoles)
    {
        int count = 0;
        _lock.EnterReadLock();
        try
        {
            foreach (var e in _chain.GetExtents(offset, data.Length))
            {
                int start = (int)(e.Offset - offset), length = (int)e.Length;
                var part = data.Slice(start, length);
                bool hole = e.Kind != ExtentKind.Data;
                // Through the chain: compressed qcow2 clusters have no file offset, their layer decodes them.
                if (!hole) _chain.ReadExtent(e, e.Offset, part);
                // The last slot is kept for a data run, so a piece can never need more runs than there are.
                else if (fillHoles || length < MinHole || count >= runs.Length - 1)
                {
                    part.Clear();
                    hole = false;
                }
                if (count > 0 && runs[count - 1].IsHole == hole)
                    runs[count - 1] = runs[count - 1] with { Length = runs[count - 1].Length + length };
                else
                    runs[count++] = new NbdRun(start, length, hole);
            }
        }
        finally { _lock.ExitReadLock(); }
        return count;
    }

    /// <summary>
    /// base:allocation of [<paramref name="offset"/>, +<paramref name="length"/>) from the chain's map: data, or a hole
    /// that reads as zeros (a layer's ZERO state, or no layer holding it). Neighbours of one status are merged; the
    /// reply may cover less than asked when it fills <paramref name="into"/> (at least one descriptor always).
    /// </summary>
    public int BlockStatus(long offset, long length, Span<NbdExtent> into)
    {
        int count = 0, examined = 0;
        _lock.EnterReadLock();
        try
        {
            foreach (var e in _chain.GetExtents(offset, length))
            {
                uint flags = e.Kind == ExtentKind.Data ? 0 : NbdMetaContext.StateHole | NbdMetaContext.StateZero;
                if (count > 0 && into[count - 1].Flags == flags)
                    into[count - 1].Length += (uint)e.Length;
                else if (count < into.Length)
                    into[count++] = new NbdExtent((uint)e.Length, flags);
                else
                    break;
                if (++examined >= MaxExtentsPerQuery) break;
            }
        }
        finally { _lock.ExitReadLock(); }
        return count;
    }

    /// <summary>
    /// Writes through the chain into the top layer. A write that changes the top layer's map (a new block, sectors made
    /// present, a ZERO block given data) is committed before it is acknowledged, so a server killed at any moment leaves
    /// every acknowledged write whole, as <c>dse write</c> does; a write over data the top layer already holds goes in place
    /// and costs no commit (durability then comes from FLUSH or FUA, as the protocol says).
    /// </summary>
    public void Write(long offset, ReadOnlySpan<byte> data)
    {
        _lock.EnterWriteLock();
        try
        {
            bool inPlace = TopHoldsData(offset, data.Length);
            _chain.Write(offset, data);
            if (!inPlace) _chain.Flush();
        }
        finally { _lock.ExitWriteLock(); }
    }

    private bool TopHoldsData(long offset, long length)
    {
        foreach (var e in _chain.GetExtents(offset, length, layerCount: 1))
            if (e.Kind != ExtentKind.Data) return false;
        return true;
    }

    /// <summary>
    /// Makes a range read as zeros. Without <paramref name="noHole"/> whole blocks take the layer's ZERO state (the
    /// chain's WriteZeroes); with it, zeros are written as data through the normal write path, so no trim-like state is
    /// used (a format may still store a block that is all zeros compactly, as it does for any such write).
    /// </summary>
    public void WriteZeroes(long offset, long length, bool noHole)
    {
        long end = offset + length;
        if (noHole)
        {
            using var zeros = AlignedBufferPool.Rent(1 << 20);
            zeros.Span.Clear();
            for (long at = offset; at < end; at += zeros.Capacity)
                Write(at, zeros.Span[..(int)Math.Min(zeros.Capacity, end - at)]);
            return;
        }
        long step = SpanHelpers.AlignUp(ZeroStep, _chain.Top.BlockSize);
        for (long at = offset; at < end;)
        {
            // Steps end on block boundaries, so splitting changes nothing in what the chain does.
            long next = Math.Min(end, SpanHelpers.AlignDown(at, _chain.Top.BlockSize) + step);
            _lock.EnterWriteLock();
            try
            {
                _chain.WriteZeroes(at, next - at);
                _chain.Flush(); // ZERO states are map changes: committed before the reply, as for writes
            }
            finally { _lock.ExitWriteLock(); }
            at = next;
        }
    }

    /// <summary>
    /// A discard hint: the whole top-layer blocks inside the range take the ZERO state, except blocks the top layer
    /// already reports as zero (a hole in a raw file stays a hole). Partial blocks at the edges are left as they are,
    /// which the protocol allows.
    /// </summary>
    public void Trim(long offset, long length)
    {
        long bs = _chain.Top.BlockSize;
        long start = SpanHelpers.AlignUp(offset, bs), end = SpanHelpers.AlignDown(offset + length, bs);
        long runStart = -1;
        for (long at = start; ; at += bs)
        {
            bool stop = at >= end;
            bool skip = stop || TopReadsZero(at, bs);
            if (runStart >= 0 && skip)
            {
                WriteZeroes(runStart, at - runStart, noHole: false);
                runStart = -1;
            }
            if (stop) break;
            if (!skip && runStart < 0) runStart = at;
        }
    }

    private bool TopReadsZero(long offset, long length)
    {
        _lock.EnterReadLock();
        try
        {
            var status = _chain.Top.GetStatus(offset, length);
            return status.Kind == ExtentKind.Zero && status.Length == length;
        }
        finally { _lock.ExitReadLock(); }
    }

    /// <summary>Commits the top layer's pending metadata and makes every completed write durable.</summary>
    public void Flush()
    {
        _lock.EnterWriteLock();
        try { _chain.Flush(); }
        finally { _lock.ExitWriteLock(); }
    }

    /// <summary>The protocol error for a failure of the chain (proto.md "Error values").</summary>
    public static NbdError ErrorOf(DiskImageException e) => e.Kind switch
    {
        ErrorKind.DiskFull => NbdError.NoSpace,
        ErrorKind.ReadOnly => NbdError.Perm,
        ErrorKind.OutOfBounds => NbdError.Invalid,
        _ => NbdError.Io,
    };

    public void Dispose() => _lock.Dispose();
}
