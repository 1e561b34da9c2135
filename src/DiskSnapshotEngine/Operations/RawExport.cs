using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Operations;

/// <summary>
/// Writes the whole virtual disk of a chain as a raw image, through the copy engine every operation shares
/// (<see cref="ExtentPump"/> over an <see cref="ExtentPlan"/>): only data extents are read, at their layers' file
/// offsets, in large aligned chunks (zero and absent ranges are known from the layers' maps, never read to find
/// zeros), while another thread writes; memory stays at a few chunks whatever the image size.
/// </summary>
public static class RawExport
{
    /// <summary>Largest read or write the export issues: big enough to stream at disk speed, small enough to pool.</summary>
    public const int ChunkSize = 8 << 20;

    private const string Phase = "exporting";

    /// <summary>
    /// Exports into a new raw file at <paramref name="outputPath"/>. Ranges that read as zeros (holes, and all-zero
    /// 4 KiB pieces of data blocks) are left as holes (the file is sparse where the file system supports it) and the
    /// file ends at the virtual size. The file is written under a temporary name and renamed into place only when
    /// complete (and, with <paramref name="durable"/>, fsynced first); on any failure or cancellation nothing is left.
    /// </summary>
    /// <param name="chain">The opened image (read-only is enough).</param>
    /// <param name="outputPath">The raw file to create.</param>
    /// <param name="overwrite">Replace an existing regular file (never one of the chain's own files).</param>
    /// <param name="progress">Receives bytes of the virtual disk done so far.</param>
    /// <param name="durable">fsync the output before it is renamed into place (the CLI's default; <c>--no-sync</c>
    /// leaves it to the page cache as cp and qemu-img do: a power loss soon after may leave the file incomplete).</param>
    /// <param name="cancel">Stops the export; the partial output is deleted.</param>
    /// <returns>The full path of the file written (a symbolic link's target).</returns>
    /// <exception cref="DiskImageException">AlreadyExists, InvalidArgument (the output is an image of the chain), FileNotFound (the output is not a regular file), ReadOnly (a link in a sticky folder that another user owns), DiskFull, Io, CorruptImage (while reading a layer).</exception>
    /// <exception cref="OperationCanceledException">When <paramref name="cancel"/> is cancelled.</exception>
    public static async Task<string> ExportToFileAsync(DiskChain chain, string outputPath, bool overwrite = false,
        IProgress<OperationProgress>? progress = null, bool durable = true, CancellationToken cancel = default) =>
        await ExportToFileAsync(chain, outputPath, overwrite, progress, durable, ExtentPump.PageCacheWorkers, cancel).ConfigureAwait(false);

    /// <summary>As above; a --no-sync export copies with <paramref name="workers"/> threads (tests vary it).</summary>
    internal static async Task<string> ExportToFileAsync(DiskChain chain, string outputPath, bool overwrite,
        IProgress<OperationProgress>? progress, bool durable, int workers, CancellationToken cancel)
    {
        ArgumentNullException.ThrowIfNull(chain);
        // Through a symbolic link the export is written to its target (as a shell's '>' would), and the link stays.
        string full = FileNode.Target(outputPath);
        if (File.Exists(full) || Directory.Exists(full))
        {
            var node = FileNode.Of(full, "output");
            foreach (var layer in chain.Layers)
                if (FileNode.Of(layer.Path).SameFileAs(node))
                    ThrowHelper.InvalidArgument("the output is one of the images being exported", full);
            if (!overwrite)
                throw new DiskImageException(ErrorKind.AlreadyExists, "the output file already exists; refusing to overwrite it", full);
            if (!File.Exists(full))
                throw new DiskImageException(ErrorKind.FileNotFound, "the output exists and is not a regular file", full);
        }

        FolderAccess.Require(full, "create it"); // named, rather than the partial file beside it
        string temp = full + ".dse-partial";
        DurableFiles.TryDelete(temp);
        // Never readable by more users than the chain, from its creation on (see FileOwnership.CreateModeFor).
        var output = ImageFile.Create(temp, FileOwnership.CreateModeFor(chain.Layers.Select(l => l.Path)), full);
        // A durable export ends with an fsync of everything anyway: its data can go straight to the disk
        // (see ImageFile.UseDirectWrites). A --no-sync export stays in the page cache, as cp would.
        if (durable) output.UseDirectWrites();
        else output.UseAllocatedWrites();
        bool done = false;
        try
        {
            // Data the file system can share with the output (reflink) is not copied at all.
            output.SetLength(chain.VirtualSize);
            var plan = ExtentPlan.Of(chain).ShareInto(output, out _);
            // Holes are skipped: a new file reads as zeros wherever nothing was written. The data runs are written
            // from the buffer they were read into to find the zero pieces: durable, straight to the disk (O_DIRECT);
            // --no-sync, into the page cache in pieces small enough to be written while still in the processor's
            // cache (cheaper than having the kernel copy them from the source again, measured), by workers that each
            // read and write their own pieces (the file takes concurrent writes; its size is set already).
            if (durable)
                await PumpAsync(chain, plan, (offset, data) => WriteSkippingZeros(output, offset, data), static (_, _) => { }, progress, cancel).ConfigureAwait(false);
            else
                await CopyToPageCacheAsync(chain, plan, output, workers, progress, cancel).ConfigureAwait(false);
            output.SetLength(chain.VirtualSize);
            if (durable) output.Flush();
            output.Dispose();
            DurableFiles.Rename(temp, full, overwrite, syncFolders: durable);
            done = true;
            return full;
        }
        finally
        {
            output.Dispose();
            // A partial export looks like a whole disk with zeros at the end: never leave one behind.
            if (!done) DurableFiles.TryDelete(temp);
        }
    }

    // The --no-sync file export: data pieces moved by parallel workers, progress scaled to the virtual disk.
    private static async Task CopyToPageCacheAsync(DiskChain chain, ExtentPlan plan, ImageFile output, int workers,
        IProgress<OperationProgress>? progress, CancellationToken cancel)
    {
        long total = chain.VirtualSize;
        await ReportedAsync(total, progress, () => ExtentPump.RunWorkersAsync(plan.Ranges, ExtentPump.PageCacheChunk, workers, plan.Read,
            (offset, data, _, isZero) => { if (!isZero) WriteSkippingZeros(output, offset, data); },
            done => progress?.Report(new OperationProgress(Phase, (long)((double)done / plan.Bytes * total), total)),
            cancel), cancel).ConfigureAwait(false);
        progress?.Report(new OperationProgress(Phase, total, total));
    }

    // The frame of both pumps: progress starts at 0 of the virtual disk, and the pump's Cancelled error is the
    // OperationCanceledException this type's callers are promised. Each pump reports its own end.
    private static async Task ReportedAsync(long total, IProgress<OperationProgress>? progress, Func<Task> pump, CancellationToken cancel)
    {
        progress?.Report(new OperationProgress(Phase, 0, total));
        try
        {
            await pump().ConfigureAwait(false);
        }
        catch (DiskImageException e) when (e.Kind == ErrorKind.Cancelled)
        {
            throw new OperationCanceledException(e.Message, e, cancel);
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
    private static void WriteSkippingZeros(ImageFile output, long offset, ReadOnlySpan<byte> data)
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
    /// <exception cref="OperationCanceledException">When <paramref name="cancel"/> is cancelled.</exception>
    public static async Task ExportToStreamAsync(DiskChain chain, Stream output,
        IProgress<OperationProgress>? progress = null, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(chain);
        ArgumentNullException.ThrowIfNull(output);
        using var zeros = AlignedBufferPool.Rent(ChunkSize);
        zeros.Span.Clear();
        try
        {
            await PumpAsync(chain, ExtentPlan.Of(chain),
                (_, data) => output.Write(data),
                (_, length) =>
                {
                    // A hole is one extent however large (a sparse 4 TiB disk to a pipe): stop between pieces when asked.
                    while (length > 0)
                    {
                        cancel.ThrowIfCancellationRequested();
                        int n = (int)Math.Min(length, zeros.Capacity);
                        output.Write(zeros.Span[..n]);
                        length -= n;
                    }
                }, progress, cancel).ConfigureAwait(false);
            output.Flush();
        }
        catch (IOException e)
        {
            throw new DiskImageException(ErrorKind.Io, $"cannot write the exported disk: {e.Message}", inner: e);
        }
    }

    private delegate void DataSink(long offset, ReadOnlySpan<byte> data);

    // The pump moves the planned data; the ranges between (and after the last) reach writeHole, in order, so a
    // sequential output gets every byte and the progress counts the whole virtual disk.
    private static async Task PumpAsync(DiskChain chain, ExtentPlan plan, DataSink writeData, Action<long, long> writeHole,
        IProgress<OperationProgress>? progress, CancellationToken cancel)
    {
        long total = chain.VirtualSize;
        long next = 0;
        // Everything before offset that the plan skipped is a hole; then the piece itself.
        void Piece(long offset, ReadOnlySpan<byte> data, long length, bool isZero)
        {
            if (offset > next) writeHole(next, offset - next);
            if (isZero) writeHole(offset, length);
            else writeData(offset, data);
            next = offset + length;
            progress?.Report(new OperationProgress(Phase, next, total));
        }
        await ReportedAsync(total, progress, () => ExtentPump.RunAsync(plan.Ranges, ChunkSize, plan.Read,
            (offset, data, length, isZero) => Piece(offset, data, length, isZero),
            null, cancel), cancel).ConfigureAwait(false);
        if (next < total) Piece(total, ReadOnlySpan<byte>.Empty, 0, isZero: true);
    }
}
