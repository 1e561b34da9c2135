using DiskSnapshotEngine.Errors;

namespace DiskSnapshotEngine.Block;

/// <summary>Rules every parent/child pair obeys, checked when a chain is built and when a child is created.</summary>
internal static class ChainRules
{
    /// <summary>
    /// Deepest chain the engine opens. Deep enough for any real snapshot tree (Hyper-V and VirtualBox stay far
    /// below), shallow enough that a crafted loop of distinct files is stopped quickly.
    /// </summary>
    public const int MaxDepth = 256;

    /// <summary>
    /// A child must present the same logical sector size as its parent. Virtual sizes may differ: Hyper-V resizes a
    /// differencing VHDX and qemu lets an overlay be larger or smaller than its backing file; the chain reads zeros
    /// past a layer's end (see <see cref="DiskChain"/>).
    /// </summary>
    /// <exception cref="DiskImageException">ChainInvalid naming both files.</exception>
    public static void CheckCompatible(IDiskLayer child, IDiskLayer parent) =>
        CheckCompatible(child.Path, child.LogicalSectorSize, parent.Path, parent.LogicalSectorSize);

    /// <summary>Same check from plain values (used before the child exists).</summary>
    public static void CheckCompatible(string childPath, int childSector, string parentPath, int parentSector)
    {
        if (childSector != parentSector)
            throw new DiskImageException(ErrorKind.ChainInvalid,
                $"logical sector size {childSector} differs from the parent's {parentSector} ({parentPath})", childPath);
    }

    /// <summary>
    /// For formats whose hypervisor keeps one size per chain (VirtualBox's VDI backend fails reads past an image's own
    /// size; ExpandVirtualDisk invalidates a differencing VHD chain): a new or relinked child must match its parent's size.
    /// </summary>
    /// <exception cref="DiskImageException">ChainInvalid naming both files.</exception>
    public static void CheckSameSize(string childPath, long childSize, string parentPath, long parentSize)
    {
        if (childSize != parentSize)
            throw new DiskImageException(ErrorKind.ChainInvalid,
                $"virtual size {childSize} differs from the parent's {parentSize} ({parentPath}), which this format's hypervisor does not accept", childPath);
    }
}
