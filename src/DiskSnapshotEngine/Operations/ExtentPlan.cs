using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Operations;

/// <summary>
/// What a copy moves, taken once from the chain's map into a list: the extents in order, each with the layer that
/// holds it and its offset in that layer's file. <see cref="Read"/> then reads a piece straight at those file offsets
/// (encoded qcow2 clusters through the layer's decoder) instead of asking the chain's layers again per chunk: map
/// first, then I/O.
/// </summary>
internal sealed class ExtentPlan
{
    private readonly DiskChain _chain;
    private readonly List<ChainExtent> _extents;
    // The producer reads pieces in order: the extent where the last read ended, so a lookup is usually one step.
    private int _cursor;

    private ExtentPlan(DiskChain chain, List<ChainExtent> extents)
    {
        _chain = chain;
        _extents = extents;
        foreach (var e in extents) Bytes += e.Length;
    }

    /// <summary>
    /// Plans the extents of the top <paramref name="layerCount"/> layers that <paramref name="include"/> keeps
    /// (data only by default; only <see cref="ExtentKind.Data"/> and <see cref="ExtentKind.Zero"/> may be kept).
    /// </summary>
    public static ExtentPlan Of(DiskChain chain, int layerCount = int.MaxValue, Func<ChainExtent, bool>? include = null,
        bool skipFileHoles = true)
    {
        include ??= static e => e.Kind == ExtentKind.Data;
        var list = new List<ChainExtent>();
        foreach (var e in chain.GetExtents(0, chain.VirtualSize, layerCount, skipFileHoles))
        {
            if (!include(e)) continue;
            if (e.Kind == ExtentKind.NotPresent) throw new ArgumentException("a plan cannot read a range no layer holds", nameof(include));
            list.Add(e);
        }
        return new ExtentPlan(chain, list);
    }

    /// <summary>The planned extents, in virtual-offset order.</summary>
    public IReadOnlyList<ChainExtent> Extents => _extents;

    /// <summary>Bytes of the virtual disk the plan covers.</summary>
    public long Bytes { get; }

    /// <summary>The planned ranges, adjacent extents (even of different layers) joined so that pieces stay large.</summary>
    public IEnumerable<CopyRange> Ranges
    {
        get
        {
            long start = -1, end = -1;
            foreach (var e in _extents)
            {
                if (e.Offset == end) { end = e.End; continue; }
                if (start >= 0) yield return new CopyRange(start, end - start);
                (start, end) = (e.Offset, e.End);
            }
            if (start >= 0) yield return new CopyRange(start, end - start);
        }
    }

    /// <summary>
    /// Shares with <paramref name="target"/> every planned data extent the file system lets it (see
    /// <see cref="SharedExtents"/>), at the same offset as in the virtual disk (a raw file), and returns the plan of
    /// what is left to copy. With <paramref name="copyInKernel"/>, what cannot be shared is copied by the kernel.
    /// </summary>
    public ExtentPlan ShareInto(ImageFile target, out long shared, bool copyInKernel = false) =>
        ShareInto(target, null, out shared, copyInKernel);

    /// <summary>
    /// Shares with <paramref name="targetFile"/> every planned data extent the file system lets it, where
    /// <paramref name="placement"/> (the image written into that file; null for a raw file) places it, and returns the
    /// plan of what is left to copy. A layer whose first attempt is refused (another file system, no reflink) is not
    /// tried again; there, with <paramref name="copyInKernel"/>, the kernel copies the placed ranges instead
    /// (copy_file_range: for copies that end in the page cache). Ranges the placement refuses, or not on
    /// <see cref="SharedExtents.Alignment"/>, are left to the caller's copy. <paramref name="moved"/>: bytes done here.
    /// Pieces are at most <see cref="SharePiece"/>, so <paramref name="progress"/> (bytes done so far) moves and
    /// <paramref name="cancel"/> stops the copy between them.
    /// </summary>
    /// <exception cref="Errors.DiskImageException">Cancelled, DiskFull, and what the placement throws.</exception>
    public ExtentPlan ShareInto(ImageFile targetFile, IPlaceableLayer? placement, out long moved, bool copyInKernel = false,
        Action<long>? progress = null, CancellationToken cancel = default)
    {
        moved = 0;
        var rest = new List<ChainExtent>();
        var noClone = new HashSet<int>();
        var noCopy = new HashSet<int>();
        foreach (var e in _extents)
        {
            var layerFile = _chain.Layers[e.LayerIndex].File as ImageFile;
            long off = e.Offset;
            if (e.Kind == ExtentKind.Data && !e.IsEncoded && layerFile is not null)
            {
                // Whole aligned pieces, one target block at a time; an unaligned tail is copied by the caller.
                while (e.End - off >= SharedExtents.Alignment
                    && (!noClone.Contains(e.LayerIndex) || (copyInKernel && !noCopy.Contains(e.LayerIndex))))
                {
                    if (cancel.IsCancellationRequested) throw ExtentPump.Cancelled();
                    long source = e.FileOffset + (off - e.Offset);
                    long want = Math.Min(SharePiece, SpanHelpers.AlignDown(e.End - off, SharedExtents.Alignment));
                    long place = off, placed = want;
                    if (!SharedExtents.IsAligned(source, off, want)
                        || (placement is not null && !placement.TryPlace(off, want, out place, out placed))
                        || !SharedExtents.IsAligned(source, place, placed))
                        break;
                    long done = 0;
                    if (!noClone.Contains(e.LayerIndex))
                    {
                        if (SharedExtents.TryClone(layerFile, source, targetFile, place, placed)) done = placed;
                        else noClone.Add(e.LayerIndex);
                    }
                    if (done == 0 && copyInKernel && !noCopy.Contains(e.LayerIndex))
                    {
                        done = SharedExtents.TryCopy(layerFile, source, targetFile, place, placed);
                        if (done == 0) noCopy.Add(e.LayerIndex);
                    }
                    // What is not done here (a placed range included) is written by the caller's copy.
                    moved += done;
                    off += done;
                    if (done > 0) progress?.Invoke(moved);
                    if (done < placed) break;
                }
            }
            if (off < e.End)
                rest.Add(off == e.Offset ? e : e with { Offset = off, Length = e.End - off, FileOffset = e.FileOffset < 0 ? -1 : e.FileOffset + (off - e.Offset) });
        }
        return moved == 0 ? this : new ExtentPlan(_chain, rest);
    }

    /// <summary>Largest range <c>ShareInto</c> shares or copies in one go (a kernel copy of a large extent
    /// would otherwise neither report progress nor see a cancellation until it ends).</summary>
    public const long SharePiece = 64L << 20;

    /// <summary>Reads [<paramref name="offset"/>, +buffer.Length), which <see cref="Ranges"/> must cover, from the planned extents.</summary>
    public void Read(long offset, Span<byte> buffer)
    {
        int i = Find(offset);
        while (buffer.Length > 0)
        {
            if (i >= _extents.Count || _extents[i].Offset > offset)
                throw new ArgumentOutOfRangeException(nameof(offset), $"[{offset}, +{buffer.Length}) is not in the plan");
            var e = _extents[i];
            int n = (int)Math.Min(buffer.Length, e.End - offset);
            if (e.Kind == ExtentKind.Data) _chain.ReadExtent(e, offset, buffer[..n]);
            else buffer[..n].Clear();
            offset += n;
            buffer = buffer[n..];
            if (offset == e.End) i++;
        }
        _cursor = i;
    }

    // The first extent ending after offset.
    private int Find(long offset)
    {
        int i = _cursor;
        if (i < _extents.Count && _extents[i].Offset <= offset && offset < _extents[i].End) return i;
        if (i + 1 < _extents.Count && _extents[i + 1].Offset <= offset && offset < _extents[i + 1].End) return i + 1;
        return Search(offset);
    }

    private int Search(long offset)
    {
        int lo = 0, hi = _extents.Count;
        while (lo < hi)
        {
            int mid = (lo + hi) >>> 1;
            if (_extents[mid].End <= offset) lo = mid + 1;
            else hi = mid;
        }
        return lo;
    }
}
