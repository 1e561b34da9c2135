using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Operations;

/// <summary>Outcome of comparing two virtual disks.</summary>
/// <param name="Identical">True when both disks have the same size and every byte is equal.</param>
/// <param name="FirstDifference">Virtual offset of the first differing byte (or the end of the shorter disk when only the sizes differ); null when identical.</param>
/// <param name="Reason">One line saying what differs; null when identical.</param>
public sealed record CompareResult(bool Identical, long? FirstDifference, string? Reason);

/// <summary>
/// Compares what two images show (each through its whole chain, any formats). Ranges that read as zeros in both
/// (ZERO state, holes, not present anywhere) are skipped without reading; a range that is data on one side only is
/// read on that side and checked for zeros.
/// </summary>
public static class ImageCompare
{
    private const int Chunk = 1 << 20;

    /// <summary>Compares the images at two paths.</summary>
    /// <exception cref="DiskImageException">Any open or read error; Cancelled.</exception>
    public static CompareResult Run(string a, string b, OpenOptions? options = null, IProgress<OperationProgress>? progress = null,
        CancellationToken cancel = default)
    {
        options = (options ?? OpenOptions.ReadOnly) with { Writable = false };
        using var ca = DiskImage.Open(a, options);
        using var cb = DiskImage.Open(b, options);
        return Run(ca, cb, progress, cancel);
    }

    /// <summary>Compares two opened chains.</summary>
    public static CompareResult Run(DiskChain a, DiskChain b, IProgress<OperationProgress>? progress = null, CancellationToken cancel = default)
    {
        long common = Math.Min(a.VirtualSize, b.VirtualSize);
        var result = CompareRange(a, b, common, progress, cancel);
        if (result is not null) return result;
        if (a.VirtualSize != b.VirtualSize)
            return new CompareResult(false, common, $"virtual sizes differ ({a.VirtualSize} and {b.VirtualSize} bytes); the first {common} bytes are equal");
        return new CompareResult(true, null, null);
    }

    private static CompareResult? CompareRange(DiskChain a, DiskChain b, long length, IProgress<OperationProgress>? progress, CancellationToken cancel)
    {
        if (length == 0) return null;
        using var ea = a.GetExtents(0, length).GetEnumerator();
        using var eb = b.GetExtents(0, length).GetEnumerator();
        if (!ea.MoveNext() || !eb.MoveNext()) return null;
        using var bufA = AlignedBufferPool.Rent(Chunk);
        using var bufB = AlignedBufferPool.Rent(Chunk);
        long pos = 0;
        while (pos < length)
        {
            if (cancel.IsCancellationRequested) throw ExtentPump.Cancelled();
            while (ea.Current.End <= pos) ea.MoveNext();
            while (eb.Current.End <= pos) eb.MoveNext();
            var xa = ea.Current;
            var xb = eb.Current;
            long end = Math.Min(xa.End, xb.End);
            bool dataA = xa.Kind == ExtentKind.Data, dataB = xb.Kind == ExtentKind.Data;
            if (dataA || dataB)
            {
                for (long off = pos; off < end; off += Chunk)
                {
                    if (cancel.IsCancellationRequested) throw ExtentPump.Cancelled();
                    int n = (int)Math.Min(Chunk, end - off);
                    var sa = bufA.Span[..n];
                    var sb = bufB.Span[..n];
                    if (dataA) a.Read(off, sa); else sa.Clear();
                    if (dataB) b.Read(off, sb); else sb.Clear();
                    int same = sa.CommonPrefixLength(sb);
                    if (same < n)
                        return new CompareResult(false, off + same, $"content differs at offset {off + same} (0x{off + same:x})");
                    progress?.Report(new OperationProgress("comparing", off + n, length));
                }
            }
            pos = end;
            progress?.Report(new OperationProgress("comparing", pos, length));
        }
        return null;
    }
}
