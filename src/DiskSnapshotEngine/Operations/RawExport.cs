using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Operations;

/// <summary>
/// Writes the whole virtual disk of a chain as a raw image. Only data extents are read (zero and absent ranges are
/// known from the layers' maps, never read to find zeros), in large aligned chunks. One task reads while another
/// writes, through a small bounded queue, so the disk never waits for the reader and memory stays at a few chunks
/// whatever the image size.
/// </summary>
public static class RawExport
{
    /// <summary>Largest read or write the export issues: big enough to stream at disk speed, small enough to pool.</summary>
    public const int ChunkSize = 8 << 20;

    // Chunks read but not yet written. With the one being read and the one being written this bounds the
    // memory in flight to QueueDepth + 2 chunks.
    private const int QueueDepth = 2;

    private const string Phase = "exporting";

    /// <summary>
    /// Exports into a new raw file at <paramref name="outputPath"/>. Ranges that read as zeros (holes, and all-zero
    /// 4 KiB pieces of data blocks) are left as holes (the file is sparse where the file system supports it) and the file ends at the virtual size. With
    /// <paramref name="durable"/> the file is fsynced before returning; on any failure or cancellation it is deleted.
    /// </summary>
    /// <param name="chain">The opened image (read-only is enough).</param>
    /// <param name="outputPath">The raw file to create.</param>
    /// <param name="overwrite">Replace an existing regular file (never one of the chain's own files).</param>
    /// <param name="progress">Receives bytes of the virtual disk done so far.</param>
    /// <param name="cancellationToken">Stops the export; the partial output is deleted.</param>
    /// <param name="durable">fsync the output before returning (cp and qemu-img leave that to the page cache; so does the CLI unless --sync).</param>
    /// <exception cref="DiskImageException">AlreadyExists, InvalidArgument (the output is an image of the chain), FileNotFound (the output is not a regular file), DiskFull, Io, CorruptImage (while reading a layer).</exception>
    /// <exception cref="OperationCanceledException">When <paramref name="cancellationToken"/> is cancelled.</exception>
    public static async Task ExportToFileAsync(DiskChain chain, string outputPath, bool overwrite = false,
        IProgress<OperationProgress>? progress = null, CancellationToken cancellationToken = default, bool durable = true)
    {
        ArgumentNullException.ThrowIfNull(chain);
        string full = Path.GetFullPath(outputPath);
        if (File.Exists(full) || Directory.Exists(full))
        {
            var node = FileNode.Of(full, "output");
            foreach (var layer in chain.Layers)
                if (FileNode.Of(layer.Path).SameFileAs(node))
                    ThrowHelper.InvalidArgument("the output is one of the images being exported", full);
            if (!overwrite)
                throw new DiskImageException(ErrorKind.AlreadyExists, "the output file already exists; refusing to overwrite it", full);
            try { File.Delete(full); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw ImageFile.Translate(e, full, "replace"); }
        }

        var output = ImageFile.Create(full);
        // A durable export ends with an fsync of everything anyway: its data can go straight to the disk
        // (see ImageFile.UseDirectWrites). A plain export stays in the page cache, as cp would.
        if (durable) output.UseDirectWrites();
        bool done = false;
        try
        {
            // Holes are skipped: a new file reads as zeros wherever nothing was written.
            await PumpAsync(chain, writeHoles: false,
                (offset, data) => WriteSkippingZeros(output, offset, data),
                static (_, _) => { },
                progress, cancellationToken).ConfigureAwait(false);
            output.SetLength(chain.VirtualSize);
            if (durable) output.Flush();
            done = true;
        }
        finally
        {
            output.Dispose();
            if (!done)
            {
                // A partial export looks like a whole disk with zeros at the end: never leave one behind.
                DurableFiles.TryDelete(full);
            }
        }
    }

    // Granularity of the zero scan: the common file-system block, and what qemu-img convert uses by default (-S 4k).
    private const int ZeroScanGranule = 4096;

    /// <summary>
    /// Writes a data run, leaving all-zero 4 KiB pieces unwritten so they stay holes. Layers report whole
    /// allocated blocks as data (a VHDX payload block is 32 MiB however little of it was written), so without
    /// this a sparse image would export dense. The scan stops at the first non-zero byte of each piece, so
    /// dense data costs almost nothing.
    /// </summary>
    private static void WriteSkippingZeros(IImageFile output, long offset, ReadOnlySpan<byte> data)
    {
        int at = 0;
        while (at < data.Length)
        {
            while (at < data.Length && SpanHelpers.IsAllZero(Granule(data, at))) at += ZeroScanGranule;
            if (at >= data.Length) return;
            int start = at;
            while (at < data.Length && !SpanHelpers.IsAllZero(Granule(data, at))) at += ZeroScanGranule;
            int end = Math.Min(at, data.Length);
            output.Write(data[start..end], offset + start);
        }
    }

    private static ReadOnlySpan<byte> Granule(ReadOnlySpan<byte> data, int at) =>
        data.Slice(at, Math.Min(ZeroScanGranule, data.Length - at));

    /// <summary>
    /// Writes the whole virtual disk to a sequential stream (a pipe, stdout): holes are written as zeros, in bounded
    /// chunks. The stream is flushed but not closed.
    /// </summary>
    /// <exception cref="DiskImageException">Io (the stream failed), CorruptImage (while reading a layer).</exception>
    /// <exception cref="OperationCanceledException">When <paramref name="cancellationToken"/> is cancelled.</exception>
    public static async Task ExportToStreamAsync(DiskChain chain, Stream output,
        IProgress<OperationProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(chain);
        ArgumentNullException.ThrowIfNull(output);
        using var zeros = AlignedBufferPool.Rent(ChunkSize);
        zeros.Span.Clear();
        try
        {
            await PumpAsync(chain, writeHoles: true,
                (_, data) => output.Write(data),
                (_, length) =>
                {
                    while (length > 0)
                    {
                        int n = (int)Math.Min(length, zeros.Capacity);
                        output.Write(zeros.Span[..n]);
                        length -= n;
                    }
                },
                progress, cancellationToken).ConfigureAwait(false);
            output.Flush();
        }
        catch (IOException e)
        {
            throw new DiskImageException(ErrorKind.Io, $"cannot write the exported disk: {e.Message}", inner: e);
        }
    }

    // MemoryManager implements Dispose explicitly; disposing returns the buffer to the pool.
    private static void Release(AlignedBuffer? buffer) => ((IDisposable?)buffer)?.Dispose();

    private delegate void DataSink(long offset, ReadOnlySpan<byte> data);

    /// <summary>A run of the virtual disk in flight from the reader to the writer; no buffer means it reads as zeros.</summary>
    private readonly record struct Chunk(long Offset, long Length, AlignedBuffer? Buffer);

    private static async Task PumpAsync(DiskChain chain, bool writeHoles, DataSink writeData, Action<long, long> writeHole,
        IProgress<OperationProgress>? progress, CancellationToken cancellationToken)
    {
        long total = chain.VirtualSize;
        progress?.Report(new OperationProgress(Phase, 0, total));
        var queue = new BoundedHandoff<Chunk>(QueueDepth);
        // Cancelling stops both sides at once; a failing writer stops the reader the same way.
        using var wake = cancellationToken.Register(queue.Abort);
        Task? reader = null;
        try
        {
            reader = DedicatedThread.Run(() => Read(chain, queue, writeHoles));
            var writer = DedicatedThread.Run(() => Write(queue, writeData, writeHole, progress, total));
            await writer.ConfigureAwait(false);
        }
        finally
        {
            queue.Abort();
            if (reader is not null) await reader.ConfigureAwait(false);
            // Buffers still queued after a failure go back to the pool.
            while (queue.TryDrain(out var left)) Release(left.Buffer);
        }
        cancellationToken.ThrowIfCancellationRequested();
    }

    private static void Write(BoundedHandoff<Chunk> queue, DataSink writeData, Action<long, long> writeHole,
        IProgress<OperationProgress>? progress, long total)
    {
        while (queue.TryTake(out var chunk))
        {
            try
            {
                if (chunk.Buffer is { } b) writeData(chunk.Offset, b.Span[..(int)chunk.Length]);
                else writeHole(chunk.Offset, chunk.Length);
            }
            finally
            {
                Release(chunk.Buffer);
            }
            progress?.Report(new OperationProgress(Phase, chunk.Offset + chunk.Length, total));
        }
    }


    private static void Read(DiskChain chain, BoundedHandoff<Chunk> queue, bool writeHoles)
    {
        AlignedBuffer? buffer = null;
        long bufferOffset = 0;
        int filled = 0;
        // Hands a chunk to the writer; false when the writer has stopped (failure or cancellation).
        bool Send(Chunk chunk)
        {
            if (queue.TryAdd(chunk)) return true;
            Release(chunk.Buffer);
            return false;
        }
        try
        {
            foreach (var extent in chain.GetExtents(0, chain.VirtualSize, skipFileHoles: true))
            {
                if (extent.Kind != ExtentKind.Data)
                {
                    if (buffer is not null)
                    {
                        var full = new Chunk(bufferOffset, filled, buffer);
                        buffer = null;
                        if (!Send(full)) return;
                    }
                    long holeEnd = extent.End;
                    for (long at = extent.Offset; at < holeEnd;)
                    {
                        // Sequential output needs the zeros in bounded pieces; a file needs only the progress.
                        long n = writeHoles ? Math.Min(ChunkSize, holeEnd - at) : holeEnd - at;
                        if (!Send(new Chunk(at, n, null))) return;
                        at += n;
                    }
                    continue;
                }

                for (long at = extent.Offset; at < extent.End;)
                {
                    // Adjacent data runs (even from different layers) share one chunk, so small runs still make large writes.
                    if (buffer is not null && bufferOffset + filled != at)
                    {
                        var full = new Chunk(bufferOffset, filled, buffer);
                        buffer = null;
                        if (!Send(full)) return;
                    }
                    if (buffer is null)
                    {
                        buffer = AlignedBufferPool.Rent(ChunkSize);
                        bufferOffset = at;
                        filled = 0;
                    }
                    int n = (int)Math.Min(ChunkSize - filled, extent.End - at);
                    chain.ReadExtent(extent, at, buffer.Span.Slice(filled, n));
                    filled += n;
                    at += n;
                    if (filled == ChunkSize)
                    {
                        var full = new Chunk(bufferOffset, filled, buffer);
                        buffer = null;
                        if (!Send(full)) return;
                    }
                }
            }
            if (buffer is not null)
            {
                var last = new Chunk(bufferOffset, filled, buffer);
                buffer = null;
                if (!Send(last)) return;
            }
            queue.Complete();
        }
        catch (Exception e)
        {
            Release(buffer);
            queue.Complete(e);
        }
    }
}
