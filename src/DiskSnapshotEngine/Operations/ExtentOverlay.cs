using DiskSnapshotEngine.Block;

namespace DiskSnapshotEngine.Operations;

/// <summary>
/// Extent algebra: walks two extent streams covering the same range together and yields the runs on which
/// both have one kind each. Rebase and compare ask "where does either side hold data" without reading bytes.
/// </summary>
internal static class ExtentOverlay
{
    /// <summary>A run with the kinds of both sides.</summary>
    public readonly record struct Pair(long Offset, long Length, ExtentKind A, ExtentKind B)
    {
        public long End => Offset + Length;
    }

    /// <summary>Both streams must cover [start, end) contiguously, in order.</summary>
    public static IEnumerable<Pair> Walk(IEnumerable<ChainExtent> a, IEnumerable<ChainExtent> b)
    {
        using var ea = a.GetEnumerator();
        using var eb = b.GetEnumerator();
        bool ha = ea.MoveNext(), hb = eb.MoveNext();
        if (!ha || !hb) yield break;
        long pos = Math.Max(ea.Current.Offset, eb.Current.Offset);
        while (ha && hb)
        {
            var xa = ea.Current;
            var xb = eb.Current;
            long end = Math.Min(xa.End, xb.End);
            if (end > pos) yield return new Pair(pos, end - pos, xa.Kind, xb.Kind);
            pos = Math.Max(pos, end);
            if (xa.End <= pos) ha = ea.MoveNext();
            if (xb.End <= pos) hb = eb.MoveNext();
        }
    }

    /// <summary>Adjacent runs merged into ranges.</summary>
    public static IEnumerable<CopyRange> Coalesce(IEnumerable<(long Offset, long Length)> runs)
    {
        long start = -1, end = -1;
        foreach (var (off, len) in runs)
        {
            if (off == end) { end += len; continue; }
            if (start >= 0) yield return new CopyRange(start, end - start);
            start = off;
            end = off + len;
        }
        if (start >= 0) yield return new CopyRange(start, end - start);
    }
}
