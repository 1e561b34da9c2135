using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Operations;

/// <summary>What a compact did.</summary>
/// <param name="SizeBefore">File size before.</param>
/// <param name="SizeAfter">File size after.</param>
/// <param name="Stats">Data bytes kept, and data bytes dropped because they were zeros.</param>
public sealed record CompactResult(long SizeBefore, long SizeAfter, CopyStats Stats);

/// <summary>
/// Compact: gives back the blocks of a dynamic or differencing VHDX or VDI that read as all zeros, and the space no
/// block uses. The image is rewritten into a temporary file of the same format, block size and sector sizes, with
/// the same identity and parent link, holding only its non-zero data; that file is made durable and then renamed
/// over the original in one atomic step. A crash before the rename leaves the original untouched (the stale temporary
/// file is removed by the next run); after it, the compacted image is complete. Children stay linked because the
/// identity and version are unchanged, and the path is the same.
/// </summary>
public static class Compact
{
    /// <summary>Temporary file suffix.</summary>
    public const string TempSuffix = ".dse-compact";

    /// <summary>Compacts <paramref name="image"/> in place.</summary>
    /// <exception cref="DiskImageException">Unsupported (raw or fixed images), DiskFull, Cancelled, Locked, open and I/O errors.</exception>
    public static Task<CompactResult> RunAsync(string image, OpenOptions? options = null,
        IProgress<OperationProgress>? progress = null, CancellationToken cancel = default) =>
        RunAsync(image, options, progress, virtualSize: null, cancel);

    /// <summary>Compact, the rewritten image getting <paramref name="virtualSize"/> when set (resize of a base image; the caller checked that no data lies past a smaller size).</summary>
    internal static async Task<CompactResult> RunAsync(string image, OpenOptions? options,
        IProgress<OperationProgress>? progress, long? virtualSize, CancellationToken cancel)
    {
        options ??= OpenOptions.ReadOnly;
        // A resize that cannot happen in place (or a merge growing its target) is named as such in refusals.
        using var rewrite = ImageRewrite.Begin(image, options, TempSuffix, virtualSize is null ? "compact" : "resize");
        image = rewrite.Named;
        var chain = rewrite.Chain;
        var src = chain.Top;
        if (src.Format == ImageFormat.Raw)
            throw new DiskImageException(ErrorKind.Unsupported, "a raw image has no block map to compact (use a sparse copy)", image);
        if (src.Type == ImageType.Fixed)
            throw new DiskImageException(ErrorKind.Unsupported, "a fixed image has every block allocated by design; convert it with a dynamic full clone instead", image);
        rewrite.RefuseLoss();
        bool differencing = src.ParentLink is not null;
        long sizeBefore = src.File.Length;
        long size = virtualSize ?? chain.VirtualSize;

        // Only the image's own layer is rewritten: its Data and Zero runs (a Zero run in a child hides parent data).
        var extents = chain.GetExtents(0, Math.Min(size, chain.VirtualSize), 1)
            .Where(e => e.Kind == ExtentKind.Data || (differencing && e.Kind == ExtentKind.Zero)).ToList();
        var plan = extents.Select(e => new CopyRange(e.Offset, e.Length)).ToList();
        long total = plan.Sum(r => r.Length);
        // The space is counted on the volume the new file goes to: beside the link's target.
        DurableFiles.RequireFreeSpace(rewrite.Image, total, "the compact");

        var createOptions = new ImageCreateOptions(size, differencing ? ImageType.Differencing : ImageType.Dynamic,
            src.BlockSize, src.LogicalSectorSize, src.PhysicalSectorSize,
            // qcow2 has no identity, but dse's own id (what a parent's seal records of its sole clone) is kept too.
            src.Identity == default ? new ImageIdentity(Seals.CloneIdOf(src), Guid.Empty) : src.Identity)
        { Seal = Seals.Of(src), SoleChild = Seals.SoleChildOf(src) };
        IDiskLayer? target = null;
        TempImageFile? tempFile = null;
        try
        {
            (tempFile, target) = rewrite.CreateTarget(createOptions, differencing ? ParentDescriptor.Of(chain.Layers[1]) : null);
            // The new layer sits on the same parents, so a partial block is filled from what the chain shows (copy-on-write).
            var output = new DiskChain(new[] { target }.Concat(chain.Layers.Skip(1)).ToArray());
            // Same content as the original: keep its version so children stay linked.
            target.PreserveVersionOnWrite = true;
            long copied = CopyStoredCompressed(src, target, extents, ref plan,
                done => progress?.Report(new OperationProgress("compacting", done, total)), cancel);
            long written = copied, zero = 0;
            await ExtentPump.RunAsync(plan, ExtentPump.ChunkFor(target.BlockSize),
                (off, buf) => chain.Read(off, buf),
                (off, data, len, isZero) =>
                {
                    if (isZero)
                    {
                        // A base image reads zeros where it holds nothing; a child must say zero to hide its parent.
                        if (differencing) output.WriteZeroes(off, len);
                        zero += len;
                        return;
                    }
                    output.Write(off, data);
                    written += len;
                },
                // The clusters copied as stored are done already: the count goes on from them up to the total.
                done => progress?.Report(new OperationProgress("compacting", copied + done, total)), cancel).ConfigureAwait(false);
            target.Flush();
            tempFile.MakeDurable();
            if (target.Identity != src.Identity)
                throw new DiskImageException(ErrorKind.Unsupported,
                    $"the {src.Format.Name()} driver did not keep the identity; the original is left untouched", image);
            target.Dispose();
            target = null;
            // Durable temp file, then one atomic rename: the original is replaced whole or not at all.
            rewrite.Publish();
            return new CompactResult(sizeBefore, new FileInfo(rewrite.Image).Length, new CopyStats(written, zero));
        }
        catch
        {
            DurableFiles.CloseAfterFailure(target);
            rewrite.Discard();
            throw;
        }
    }

    // Compressed clusters (qcow2 to qcow2 of the same cluster size and compression type) are copied as stored, so they
    // stay compressed; the plan keeps the rest, and any cluster that could not be copied so, to be written decoded.
    private static long CopyStoredCompressed(IDiskLayer src, IDiskLayer target, List<ChainExtent> extents, ref List<CopyRange> plan,
        Action<long> progress, CancellationToken cancel)
    {
        if (src is not IStoredCompressedLayer from || target is not IStoredCompressedLayer to || !to.CanStoreCompressedFrom(from)) return 0;
        var rest = new List<CopyRange>();
        long copied = 0, unit = target.BlockSize;
        foreach (var e in extents)
        {
            if (!e.IsEncoded)
            {
                rest.Add(new CopyRange(e.Offset, e.Length));
                continue;
            }
            for (long at = e.Offset; at < e.Offset + e.Length; at += unit)
            {
                if (cancel.IsCancellationRequested) throw ExtentPump.Cancelled();
                long length = Math.Min(unit, e.Offset + e.Length - at);
                if (at % unit == 0 && from.ReadStoredCompressed(at) is { } stored && to.WriteStoredCompressed(at, stored))
                {
                    copied += length;
                    progress(copied);
                }
                else rest.Add(new CopyRange(at, length));
            }
        }
        plan = rest;
        return copied;
    }
}