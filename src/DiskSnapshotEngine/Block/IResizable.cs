namespace DiskSnapshotEngine.Block;

/// <summary>A layer that can change its virtual size in place, at least in some cases (<c>dse resize</c>).</summary>
public interface IResizable
{
    /// <summary>
    /// Changes the virtual size in place, durably and atomically (old size or new after a crash), when the format
    /// allows it cheaply here; returns false, having changed nothing, when it does not (the caller then rewrites the
    /// image). The caller has checked that no data lies beyond a smaller size. Identity and version are kept.
    /// </summary>
    /// <exception cref="Errors.DiskImageException">ReadOnly, DiskFull, Io.</exception>
    bool TryResizeInPlace(long newSize);
}
