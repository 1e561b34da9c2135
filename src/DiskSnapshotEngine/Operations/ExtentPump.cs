using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Operations;

/// <summary>A range of the virtual disk to move, as the operation planned it.</summary>
/// <param name="Offset">Virtual offset.</param>
/// <param name="Length">Bytes.</param>
internal readonly record struct CopyRange(long Offset, long Length);

/// <summary>
/// The copy loop every data-moving operation shares (clone, merge, pull, rebase, compact): a producer reads
/// chunk-aligned pieces of the planned ranges into pooled buffers, a consumer writes them, and a bounded handoff
/// between them overlaps reads with writes while capping memory at <see cref="Depth"/> chunks whatever the image
/// size. Pieces that read as all zeros travel without a buffer, flagged, so the writer can skip or zero them.
/// </summary>
internal static class ExtentPump
{
    /// <summary>Chunks in flight between reader and writer.</summary>
    public const int Depth = 6;

    /// <summary>Default chunk size: large enough for sequential throughput, small enough to bound memory.</summary>
    public const int DefaultChunk = 1 << 20;

    /// <summary>
    /// A failpoint for the real-process signal tests: with DSE_TEST_PIECE_DELAY_MS set, the writer waits that long
    /// after each piece, so an operation is surely still under way when the test interrupts it. Unset, it costs nothing.
    /// </summary>
    private static readonly int s_testPieceDelayMs =
        int.TryParse(Environment.GetEnvironmentVariable("DSE_TEST_PIECE_DELAY_MS"), out int ms) ? Math.Clamp(ms, 0, 1000) : 0;

    private readonly record struct Piece(long Offset, int Length, AlignedBuffer? Buffer);

    /// <summary>
    /// The chunk size to use for a target allocation unit: 4 MiB (as many whole blocks as fit in it when blocks are
    /// smaller, so pieces line up with the target's blocks). Small blocks (qcow2 clusters, VDI blocks) still travel in large pieces: fewer system calls
    /// and handoffs, and the formats skip all-zero blocks inside a piece themselves.
    /// </summary>
    /// <param name="targetBlockSize">The target's allocation unit (0 or less: none).</param>
    /// <param name="pageCache">The target is written through the page cache (a <c>--no-sync</c> copy): pieces of
    /// <see cref="PageCacheChunk"/>, except for blocks between that and 4 MiB (VDI, VHD), which stay whole as above so
    /// that a new block is written in one piece (blocks of 4 MiB and more get pieces of a block in any case).</param>
    public static int ChunkFor(int targetBlockSize, bool pageCache = false)
    {
        int max = pageCache && (targetBlockSize <= PageCacheChunk || targetBlockSize >= MaxChunk) ? PageCacheChunk : MaxChunk;
        return targetBlockSize <= 0 || targetBlockSize >= max ? max : max / targetBlockSize * targetBlockSize;
    }

    private const int MaxChunk = 4 << 20;

    /// <summary>
    /// Piece size for copies through the page cache: a piece read into a buffer is written from it while it is still
    /// in the processor's cache (L2 is 512 KiB a core here). A buffered copy of 2 GiB measured on this 2-core machine:
    /// 256 KiB pieces cost about half the CPU of 1 MiB pieces and a third of 4 MiB ones (the buffer no longer fits,
    /// and the data crosses the memory bus twice more). Durable copies write with O_DIRECT and keep large pieces.
    /// </summary>
    public const int PageCacheChunk = 256 << 10;

    /// <summary>
    /// Workers of a copy into the page cache (<see cref="RunWorkersAsync"/>): DSE_PAGE_CACHE_WORKERS (1 to 8), 2 by
    /// default: one reads while the other writes (the kernel takes one buffered write into a file at a time, so more
    /// only add contention on a small machine).
    /// </summary>
    public static int PageCacheWorkers { get; } =
        int.TryParse(Environment.GetEnvironmentVariable("DSE_PAGE_CACHE_WORKERS"), out int n) ? Math.Clamp(n, 1, 8) : 2;

    /// <summary>
    /// Moves every byte of <paramref name="ranges"/>: <paramref name="read"/> fills a buffer from the source,
    /// <paramref name="write"/> stores it (data empty and isZero true for an all-zero piece).
    /// <paramref name="progress"/> receives bytes done after each piece.
    /// </summary>
    /// <exception cref="DiskImageException">Cancelled when <paramref name="cancel"/> fires; whatever read or write throw.</exception>
    public static async Task RunAsync(IEnumerable<CopyRange> ranges, int chunkSize,
        Action<long, Span<byte>> read, WriteAction write, Action<long>? progress, CancellationToken cancel)
    {
        var handoff = new BoundedHandoff<Piece>(Depth);
        using var wake = cancel.Register(handoff.Abort);
        // Reader and writer each get a dedicated thread: both block in system calls most of the time, and a
        // blocking handoff between two threads costs no spinning (see BoundedHandoff).
        Task? producer = null;
        try
        {
            producer = DedicatedThread.Run(() => Produce(ranges, chunkSize, read, handoff));
            var consumer = DedicatedThread.Run(() => Consume(handoff, write, progress));
            await consumer.ConfigureAwait(false);
            // A cancellation that arrives with the last piece still cancels: the caller has not committed anything yet.
            cancel.ThrowIfCancellationRequested();
        }
        catch (OperationCanceledException e)
        {
            throw Cancelled(e);
        }
        finally
        {
            handoff.Abort();
            // Return every buffer still queued so nothing leaks when the writer failed or was cancelled.
            if (producer is not null)
                try { await producer.ConfigureAwait(false); } catch (Exception) { }
            while (handoff.TryDrain(out var left)) ((IDisposable?)left.Buffer)?.Dispose();
        }
    }

    /// <summary>
    /// Moves every byte of <paramref name="ranges"/> as <see cref="RunAsync"/> does, but with <paramref name="workers"/>
    /// threads that each read a piece and write it themselves, for a <paramref name="write"/> that may be called
    /// concurrently (a raw file written through the page cache). Reads are taken in turn (the plan keeps a cursor);
    /// while one worker writes, another reads, and each writes from its own buffer while that is still in its core's
    /// cache, with no handoff between threads. Pieces may be written out of order; progress only grows.
    /// </summary>
    /// <exception cref="DiskImageException">Cancelled when <paramref name="cancel"/> fires; whatever read or write throw.</exception>
    public static async Task RunWorkersAsync(IEnumerable<CopyRange> ranges, int chunkSize, int workers,
        Action<long, Span<byte>> read, WriteAction write, Action<long>? progress, CancellationToken cancel)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(workers, 1);
        using var pieces = Pieces(ranges, chunkSize).GetEnumerator();
        var readGate = new object();
        var progressGate = new object();
        long done = 0, reported = 0;
        Exception? failure = null;
        void Work()
        {
            while (true)
            {
                AlignedBuffer? buffer = null;
                try
                {
                    CopyRange piece;
                    lock (readGate)
                    {
                        if (Volatile.Read(ref failure) is not null || cancel.IsCancellationRequested || !pieces.MoveNext()) return;
                        piece = pieces.Current;
                        buffer = AlignedBufferPool.Rent((int)piece.Length);
                        read(piece.Offset, buffer.Span[..(int)piece.Length]);
                    }
                    var data = buffer.Span[..(int)piece.Length];
                    bool zero = SpanHelpers.IsAllZero(data);
                    write(piece.Offset, zero ? Span<byte>.Empty : data, data.Length, zero);
                    long now = Interlocked.Add(ref done, piece.Length);
                    if (progress is not null)
                        lock (progressGate)
                            if (now > reported) progress(reported = now);
                    if (s_testPieceDelayMs > 0) Thread.Sleep(s_testPieceDelayMs);
                }
                catch (Exception e)
                {
                    Interlocked.CompareExchange(ref failure, e, null);
                    return;
                }
                finally
                {
                    ((IDisposable?)buffer)?.Dispose();
                }
            }
        }
        var threads = new Task[workers];
        for (int i = 0; i < workers; i++) threads[i] = DedicatedThread.Run(Work);
        await Task.WhenAll(threads).ConfigureAwait(false);
        if (failure is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
        if (cancel.IsCancellationRequested) throw Cancelled();
    }

    // The pieces of the ranges, in order: they end on chunk boundaries so that writes line up with the target's blocks.
    private static IEnumerable<CopyRange> Pieces(IEnumerable<CopyRange> ranges, int chunkSize)
    {
        foreach (var r in ranges)
        {
            long off = r.Offset, end = r.Offset + r.Length;
            while (off < end)
            {
                long boundary = (off / chunkSize + 1) * chunkSize;
                int n = (int)(Math.Min(end, boundary) - off);
                yield return new CopyRange(off, n);
                off += n;
            }
        }
    }

    private static void Consume(BoundedHandoff<Piece> handoff, WriteAction write, Action<long>? progress)
    {
        long done = 0;
        while (handoff.TryTake(out var piece))
        {
            using var owned = piece.Buffer;
            if (piece.Buffer is null) write(piece.Offset, ReadOnlySpan<byte>.Empty, piece.Length, true);
            else write(piece.Offset, piece.Buffer.Span[..piece.Length], piece.Length, false);
            done += piece.Length;
            progress?.Invoke(done);
            if (s_testPieceDelayMs > 0) Thread.Sleep(s_testPieceDelayMs);
        }
    }


    private static void Produce(IEnumerable<CopyRange> ranges, int chunkSize, Action<long, Span<byte>> read,
        BoundedHandoff<Piece> handoff)
    {
        try
        {
            foreach (var (off, length) in Pieces(ranges, chunkSize))
            {
                int n = (int)length;
                var buffer = AlignedBufferPool.Rent(n);
                try
                {
                    read(off, buffer.Span[..n]);
                    if (SpanHelpers.IsAllZero(buffer.Span[..n]))
                    {
                        ((IDisposable)buffer).Dispose();
                        buffer = null;
                    }
                    if (!handoff.TryAdd(new Piece(off, n, buffer))) return;
                    buffer = null;
                }
                finally
                {
                    ((IDisposable?)buffer)?.Dispose();
                }
            }
            handoff.Complete();
        }
        catch (Exception e)
        {
            handoff.Complete(e);
        }
    }

    /// <summary>The error every operation reports when it is cancelled.</summary>
    public static DiskImageException Cancelled(Exception? inner = null) =>
        new(ErrorKind.Cancelled, "the operation was cancelled", inner: inner);
}

/// <summary>Stores one piece: <paramref name="data"/> is empty when <paramref name="isZero"/> is true.</summary>
internal delegate void WriteAction(long offset, ReadOnlySpan<byte> data, int length, bool isZero);
