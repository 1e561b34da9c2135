using DiskSnapshotEngine.Errors;

namespace DiskSnapshotEngine.Block;

/// <summary>The checks and the close that every format's layer makes alike (range, writability, close once).</summary>
internal static class LayerGuards
{
    /// <summary>Throws OutOfBounds unless [offset, offset + length) lies inside the layer's virtual disk.</summary>
    public static void CheckRange(this IDiskLayer layer, long offset, long length)
    {
        long size = layer.VirtualSize;
        if (offset < 0 || length < 0 || offset > size - length) ThrowHelper.OutOfBounds(layer.Path, offset, length, size);
    }

    /// <summary>Throws ReadOnly, naming <paramref name="operation"/>, unless the layer was opened for writing.</summary>
    public static void EnsureWritable(this IDiskLayer layer, string operation)
    {
        if (!layer.IsWritable) ThrowHelper.ReadOnly(layer.Path, operation);
    }

    /// <summary>
    /// Closes a layer once: flushes it when writable (committing its metadata), then, even when the flush failed,
    /// disposes <paramref name="owned"/> and the layer's file.
    /// </summary>
    public static void CloseOnce(this IDiskLayer layer, ref bool disposed, IDisposable? owned = null)
    {
        if (disposed) return;
        disposed = true;
        try
        {
            if (layer.IsWritable) layer.Flush();
        }
        finally
        {
            owned?.Dispose();
            layer.File.Dispose();
        }
    }
}
