using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Operations;

/// <summary>What a clone of a source would take on disk (like <c>qemu-img measure</c>).</summary>
/// <param name="Source">The measured image.</param>
/// <param name="Format">Format of the clone.</param>
/// <param name="Type">Dynamic or fixed.</param>
/// <param name="VirtualSize">Virtual size of the clone.</param>
/// <param name="BlockSize">Allocation unit of the clone.</param>
/// <param name="Required">File size of a clone holding the data the source holds now.</param>
/// <param name="FullyAllocated">File size once every block is written.</param>
public sealed record MeasureResult(string Source, string Format, string Type, long VirtualSize, long BlockSize, long Required, long FullyAllocated);

/// <summary>
/// Measure: the file size a full clone of a chain would have. The format's fixed part is measured exactly by
/// creating an empty image of those parameters (headers, log, maps; a few MiB in a temporary file, deleted); each
/// block the clone would allocate adds its block and its per-block metadata. Blocks are counted by reading the chain's
/// data extents in the pieces a clone copies: all-zero pieces, which a clone skips, allocate nothing.
/// </summary>
public static class Measure
{
    /// <summary>Measures a clone of <paramref name="source"/> in <paramref name="format"/>.</summary>
    /// <exception cref="DiskImageException">InvalidArgument (bad block size, a differencing type), Unsupported (a fixed qcow2), open and I/O errors.</exception>
    public static MeasureResult Run(string source, ImageFormat format, ImageType type = ImageType.Dynamic, int? blockSize = null, OpenOptions? open = null)
    {
        if (type == ImageType.Differencing)
            ThrowHelper.InvalidArgument("measure sizes a full clone (dynamic or fixed), not a differencing child", source);
        if (format == ImageFormat.Qcow2 && type == ImageType.Fixed)
            throw new DiskImageException(ErrorKind.Unsupported, "a fixed qcow2 is not made here (qcow2 images are dynamic)", source);
        using var src = DiskImage.Open(source, (open ?? OpenOptions.ReadOnly) with { Writable = false });
        long size = src.VirtualSize;
        var (empty, unit) = EmptyImage(format, new ImageCreateOptions(size, ImageType.Dynamic, blockSize, src.Top.LogicalSectorSize, src.Top.PhysicalSectorSize));
        long totalBlocks = (size + unit - 1) / unit;
        long dataBlocks = type == ImageType.Fixed ? totalBlocks : CountDataBlocks(src, unit);
        long full = SizeFor(format, type, size, unit, empty, totalBlocks, totalBlocks);
        long required = type == ImageType.Fixed ? full : SizeFor(format, type, size, unit, empty, dataBlocks, totalBlocks);
        return new MeasureResult(Path.GetFullPath(source), format.ToString().ToLowerInvariant(), type.ToString().ToLowerInvariant(), size, unit, required, full);
    }

    /// <summary>
    /// Blocks of <paramref name="unit"/> bytes a clone allocates: those a non-zero piece of data overlaps. Data is read
    /// in the pieces a clone copies (it skips all-zero ones), or block by block for blocks smaller than a piece.
    /// </summary>
    private static long CountDataBlocks(DiskChain src, long unit)
    {
        int piece = ExtentPump.ChunkFor((int)Math.Min(unit, int.MaxValue));
        using var buffer = AlignedBufferPool.Rent(piece);
        long count = 0, last = -1;
        foreach (var e in src.GetExtents(0, src.VirtualSize, skipFileHoles: true))
        {
            if (e.Kind != ExtentKind.Data) continue;
            for (long off = e.Offset; off < e.Offset + e.Length;)
            {
                // A block smaller than a piece (a qcow2 cluster) is allocated only when it holds non-zero bytes itself.
                long step = unit < piece ? unit - off % unit : piece;
                int n = (int)Math.Min(step, e.Offset + e.Length - off);
                var span = buffer.Span[..n];
                src.Read(off, span);
                if (span.IndexOfAnyExcept((byte)0) >= 0)
                {
                    long first = Math.Max(off / unit, last + 1), end = (off + n - 1) / unit;
                    if (end >= first) { count += end - first + 1; last = end; }
                }
                off += n;
            }
        }
        return count;
    }

    // File size with `blocks` blocks allocated, from the empty image's length.
    private static long SizeFor(ImageFormat format, ImageType type, long size, long unit, long empty, long blocks, long totalBlocks) => format switch
    {
        ImageFormat.Raw => size,
        ImageFormat.Vhd when type == ImageType.Fixed => size + 512,
        // Each VHD block is preceded by its sector bitmap (one bit per sector, padded to 512 bytes).
        ImageFormat.Vhd => empty + blocks * (unit + SpanHelpers.AlignUp(unit / 512 / 8, 512)),
        // VHDX payload blocks are 1 MiB aligned; the BAT is already in the empty image.
        ImageFormat.Vhdx => SpanHelpers.AlignUp(empty, 1 << 20) + blocks * unit,
        ImageFormat.Vdi => empty + blocks * unit,
        ImageFormat.Qcow2 => empty + blocks * unit + Qcow2Metadata(unit, blocks, totalBlocks),
        _ => empty + blocks * unit,
    };

    // L2 tables for the clusters (one per L2 range touched, at most), and refcount blocks for everything allocated.
    private static long Qcow2Metadata(long cluster, long clusters, long totalClusters)
    {
        long perL2 = cluster / 8;
        long l2 = Math.Min(clusters, (totalClusters + perL2 - 1) / perL2);
        long perRefcountBlock = cluster / 2; // 16-bit refcounts, as new images are made
        long refcountBlocks = (clusters + l2 + perRefcountBlock - 1) / perRefcountBlock;
        return (l2 + refcountBlocks) * cluster;
    }

    // Creates an empty dynamic image in a temporary file: its length and allocation unit.
    private static (long Length, long Unit) EmptyImage(ImageFormat format, ImageCreateOptions options)
    {
        if (format == ImageFormat.Raw) return (0, Math.Min(options.VirtualSize, 1 << 20));
        string temp = Path.Combine(Path.GetTempPath(), $"dse-measure-{Guid.NewGuid():N}");
        var file = ImageFile.Create(temp);
        try
        {
            IDiskLayer layer;
            try { layer = ImageFormats.Get(format).Create(file, options, null); }
            catch { file.Dispose(); throw; }
            using (layer) return (layer.File.Length, layer.BlockSize);
        }
        finally { DurableFiles.TryDelete(temp); }
    }
}
