using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Block;

/// <summary>
/// An opened image and all its parents, top first. The chain is where parents are resolved:
/// a read asks each layer for the status of the range and goes down only for what a layer does not hold,
/// zero-filling below the base; a write that a layer cannot take as-is (a partial sector or block it does not
/// hold yet) is widened to the span the layer asks for and filled from the current content first (copy-on-write).
/// Layers may differ in virtual size (a Hyper-V or qemu child resized apart from its parent): the disk has the top's
/// size, and past a layer's own end the chain reads zeros, never what a larger layer below holds there.
/// </summary>
public sealed class DiskChain : IDisposable
{
    private readonly IDiskLayer[] _layers;

    /// <summary>Builds a chain from opened layers, top first; takes ownership of them.</summary>
    /// <exception cref="DiskImageException">ChainInvalid when a layer's logical sector size differs from its child's.</exception>
    public DiskChain(IReadOnlyList<IDiskLayer> layers)
    {
        if (layers.Count == 0) throw new ArgumentException("a chain needs at least one layer", nameof(layers));
        _layers = layers.ToArray();
        for (int i = 1; i < _layers.Length; i++)
            ChainRules.CheckCompatible(_layers[i - 1], _layers[i]);
    }

    /// <summary>The layers, top (the image that was opened) first, base last.</summary>
    public IReadOnlyList<IDiskLayer> Layers => _layers;

    /// <summary>The image that was opened.</summary>
    public IDiskLayer Top => _layers[0];

    /// <summary>Size of the virtual disk.</summary>
    public long VirtualSize => _layers[0].VirtualSize;

    /// <summary>Reads the virtual disk as the whole chain shows it.</summary>
    /// <exception cref="DiskImageException">OutOfBounds, CorruptImage, Io.</exception>
    public void Read(long offset, Span<byte> buffer)
    {
        CheckRange(offset, buffer.Length);
        ReadFrom(0, offset, buffer);
    }

    /// <summary>Reads what layers at index <paramref name="firstLayer"/> and below show (the view of a parent).</summary>
    public void ReadBelow(int firstLayer, long offset, Span<byte> buffer)
    {
        CheckRange(offset, buffer.Length);
        ReadFrom(firstLayer, offset, buffer);
    }

    private void ReadFrom(int layer, long offset, Span<byte> buffer)
    {
        while (buffer.Length > 0)
        {
            if (layer >= _layers.Length)
            {
                buffer.Clear();
                return;
            }
            var l = _layers[layer];
            if (offset >= l.VirtualSize)
            {
                buffer.Clear();
                return;
            }
            var ext = StatusOf(l, offset, Math.Min(buffer.Length, l.VirtualSize - offset));
            var part = buffer[..(int)ext.Length];
            switch (ext.Kind)
            {
                case ExtentKind.Data:
                    ReadData(l, ext.FileOffset, offset, part);
                    break;
                case ExtentKind.Zero:
                    part.Clear();
                    break;
                default:
                    ReadFrom(layer + 1, offset, part);
                    break;
            }
            offset += part.Length;
            buffer = buffer[part.Length..];
        }
    }

    /// <summary>
    /// Reads part of a data extent that <see cref="GetExtents"/> returned: a plain file read, or the layer's decoder
    /// for encoded data (<see cref="ChainExtent.IsEncoded"/>).
    /// </summary>
    /// <param name="extent">A <see cref="ExtentKind.Data"/> extent of this chain.</param>
    /// <param name="offset">Virtual offset inside the extent where the read starts.</param>
    /// <param name="buffer">Receives the bytes; must not reach past the extent's end.</param>
    public void ReadExtent(ChainExtent extent, long offset, Span<byte> buffer)
    {
        if (extent.Kind != ExtentKind.Data || offset < extent.Offset || offset + buffer.Length > extent.End)
            throw new ArgumentOutOfRangeException(nameof(offset), $"[{offset}, +{buffer.Length}) is not inside the data extent {extent}");
        var layer = _layers[extent.LayerIndex];
        ReadData(layer, extent.IsEncoded ? -1 : extent.FileOffset + (offset - extent.Offset), offset, buffer);
    }

    private static void ReadData(IDiskLayer layer, long fileOffset, long offset, Span<byte> buffer)
    {
        if (fileOffset >= 0) layer.File.ReadExactly(buffer, fileOffset, "payload block");
        else if (layer is IEncodedDataLayer encoded) encoded.ReadEncoded(offset, buffer);
        else throw new InvalidOperationException($"{layer.Format.Name()} layer {layer.Path} reported data without a file offset");
    }

    /// <summary>
    /// The extents of [<paramref name="offset"/>, +<paramref name="length"/>) resolved through the top
    /// <paramref name="layerCount"/> layers (all by default), adjacent runs of one kind and layer merged.
    /// This is the one question clone, merge, map and compare ask.
    /// </summary>
    /// <param name="offset">Virtual offset where the question starts.</param>
    /// <param name="length">Length of the range asked about.</param>
    /// <param name="layerCount">How many layers, from the top, to consider.</param>
    /// <param name="skipFileHoles">
    /// Split data extents where the layer's file has a hole (SEEK_HOLE) and report those parts as <see cref="ExtentKind.Zero"/>
    /// of the same layer: a hole reads as zeros, so copying operations need not read it. Metadata views (map) leave it off.
    /// </param>
    public IEnumerable<ChainExtent> GetExtents(long offset, long length, int layerCount = int.MaxValue, bool skipFileHoles = false)
    {
        CheckRange(offset, length);
        int depth = Math.Min(layerCount, _layers.Length);
        ChainExtent? pending = null;
        var resolved = Resolve(0, depth, offset, length);
        if (skipFileHoles) resolved = SplitFileHoles(resolved);
        foreach (var e in resolved)
        {
            if (pending is { } p && p.End == e.Offset && p.Kind == e.Kind && p.LayerIndex == e.LayerIndex
                && (e.Kind != ExtentKind.Data || (p.IsEncoded ? e.IsEncoded : !e.IsEncoded && p.FileOffset + p.Length == e.FileOffset)))
            {
                pending = p with { Length = p.Length + e.Length };
                continue;
            }
            if (pending is { } done) yield return done;
            pending = e;
        }
        if (pending is { } last) yield return last;
    }

    private IEnumerable<ChainExtent> Resolve(int layer, int depth, long offset, long length)
    {
        long end = offset + length;
        while (offset < end)
        {
            if (layer >= depth)
            {
                yield return new ChainExtent(offset, end - offset, ExtentKind.NotPresent, -1);
                yield break;
            }
            long layerEnd = _layers[layer].VirtualSize;
            if (offset >= layerEnd)
            {
                foreach (var past in PastEnd(layer, depth, offset, end)) yield return past;
                yield break;
            }
            var ext = StatusOf(_layers[layer], offset, Math.Min(end, layerEnd) - offset);
            if (ext.Kind == ExtentKind.NotPresent)
            {
                foreach (var below in Resolve(layer + 1, depth, offset, ext.Length)) yield return below;
            }
            else
            {
                yield return new ChainExtent(offset, ext.Length, ext.Kind, layer, ext.FileOffset);
            }
            offset += ext.Length;
        }
    }

    // Past a layer's end the disk reads zeros. Only a layer below the ones asked about (a merge target) could show
    // something there, and only up to its own end: that part is this layer's Zero (a merge must write zeros over it),
    // the rest is in no layer (NotPresent), which is what a whole chain reports past its base's end.
    private IEnumerable<ChainExtent> PastEnd(int layer, int depth, long offset, long end)
    {
        long hidden = depth < _layers.Length ? Math.Clamp(_layers[depth].VirtualSize, offset, end) : offset;
        if (hidden > offset) yield return new ChainExtent(offset, hidden - offset, ExtentKind.Zero, layer);
        if (end > hidden) yield return new ChainExtent(hidden, end - hidden, ExtentKind.NotPresent, -1);
    }

    // Large VHDX blocks (32 MiB by default) are often mostly holes in the file: the bytes never written there read as
    // zeros, and SEEK_DATA/SEEK_HOLE finds them without reading.
    // A loop of ours rather than LINQ's SelectMany: its instantiation over ChainExtent is compiled at run time (start-up).
    private IEnumerable<ChainExtent> SplitFileHoles(IEnumerable<ChainExtent> extents)
    {
        foreach (var e in extents)
            foreach (var part in SplitFileHoles(e))
                yield return part;
    }

    private IEnumerable<ChainExtent> SplitFileHoles(ChainExtent e)
    {
        // Encoded data has no file range to probe.
        if (e.Kind != ExtentKind.Data || e.IsEncoded)
        {
            yield return e;
            yield break;
        }
        var file = _layers[e.LayerIndex].File;
        long fileEnd = e.FileOffset + e.Length;
        for (long at = e.FileOffset; at < fileEnd;)
        {
            var (isData, run) = SparseProbe.RunAt(file, at, fileEnd);
            long virtualOffset = e.Offset + (at - e.FileOffset);
            yield return isData
                ? new ChainExtent(virtualOffset, run, ExtentKind.Data, e.LayerIndex, at)
                : new ChainExtent(virtualOffset, run, ExtentKind.Zero, e.LayerIndex);
            at += run;
        }
    }

    /// <summary>Writes into the top layer, with copy-on-write for ranges it cannot take as-is.</summary>
    /// <exception cref="DiskImageException">ReadOnly, OutOfBounds, DiskFull, Io.</exception>
    public void Write(long offset, ReadOnlySpan<byte> data)
    {
        CheckRange(offset, data.Length);
        var top = Top;
        if (!top.IsWritable) ThrowHelper.ReadOnly(top.Path, "write");
        foreach (var p in BlockPieces.Of(offset, data.Length, top.BlockSize))
            WritePiece(top, p.Offset, data.Slice(p.Start, p.Length));
    }

    private void WritePiece(IDiskLayer top, long offset, ReadOnlySpan<byte> piece)
    {
        var (spanOffset, spanLength) = top.GetWriteSpan(offset, piece.Length);
        if (spanOffset == offset && spanLength == piece.Length)
        {
            top.Write(offset, piece);
            return;
        }
        if (spanOffset > offset || spanOffset + spanLength < offset + piece.Length || spanLength > int.MaxValue)
            throw new InvalidOperationException($"{top.Format.Name()} layer returned a write span that does not cover the write");

        // Copy-on-write: the bytes around the write keep what the chain shows now (parent data, or this
        // layer's own present sectors), so only the head and tail of the span are read.
        using var buffer = AlignedBufferPool.Rent((int)spanLength);
        var span = buffer.Span[..(int)spanLength];
        int head = (int)(offset - spanOffset);
        int tailStart = head + piece.Length;
        if (head > 0) ReadFrom(0, spanOffset, span[..head]);
        if (tailStart < span.Length) ReadFrom(0, offset + piece.Length, span[tailStart..]);
        piece.CopyTo(span[head..]);
        top.Write(spanOffset, span);
    }

    /// <summary>Makes a range read as zeros: whole blocks through the layer's ZERO state, edges as zero data.</summary>
    public void WriteZeroes(long offset, long length)
    {
        CheckRange(offset, length);
        var top = Top;
        if (!top.IsWritable) ThrowHelper.ReadOnly(top.Path, "write");
        long bs = top.BlockSize;
        long end = offset + length;
        long alignedStart = Math.Min(end, SpanHelpers.AlignUp(offset, bs));
        long alignedEnd = Math.Max(alignedStart, SpanHelpers.AlignDown(end, bs));
        WriteZeroData(offset, alignedStart - offset);
        if (alignedEnd > alignedStart) top.WriteZeroes(alignedStart, alignedEnd - alignedStart);
        WriteZeroData(alignedEnd, end - alignedEnd);
    }

    private void WriteZeroData(long offset, long length) => ZeroFill.Run(offset, length, (zeros, at) => Write(at, zeros));

    /// <summary>Commits the top layer's pending metadata and makes it durable.</summary>
    public void Flush()
    {
        if (Top.IsWritable) Top.Flush();
    }

    /// <summary>Checks every layer's structures.</summary>
    public CheckReport Check()
    {
        var report = new CheckReport();
        foreach (var l in _layers) report.AddRange(l.Check());
        return report;
    }

    /// <summary>Closes every layer (the top first, committing its metadata).</summary>
    public void Dispose()
    {
        List<Exception>? errors = null;
        foreach (var l in _layers)
        {
            try { l.Dispose(); }
            catch (Exception e) { (errors ??= new()).Add(e); }
        }
        if (errors is { Count: 1 }) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(errors[0]).Throw();
        if (errors is { Count: > 1 }) throw new AggregateException(errors);
    }

    private static LayerExtent StatusOf(IDiskLayer layer, long offset, long length)
    {
        var ext = layer.GetStatus(offset, length);
        if (ext.Offset != offset || ext.Length <= 0 || ext.Length > length)
            throw new InvalidOperationException($"{layer.Format.Name()} layer {layer.Path} answered status [{ext.Offset}, +{ext.Length}) for a request at {offset}, +{length}");
        return ext;
    }

    private void CheckRange(long offset, long length)
    {
        if (offset < 0 || length < 0 || offset > VirtualSize - length)
            ThrowHelper.OutOfBounds(Top.Path, offset, length, VirtualSize);
    }
}
