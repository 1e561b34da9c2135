namespace DiskSnapshotEngine.Block;

/// <summary>A differencing layer that can become a base image in place (<c>dse detach</c>).</summary>
public interface IParentDetachable
{
    /// <summary>
    /// Drops the parent link: from now on what the layer does not hold reads as zeros. The caller first copies into
    /// the layer every byte its parents show, so the content is unchanged. Atomic and durable; identity kept.
    /// </summary>
    /// <exception cref="Errors.DiskImageException">ReadOnly, Unsupported (no parent), Io.</exception>
    void DetachFromParent();
}
