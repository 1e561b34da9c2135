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

    /// <summary>A child must present the same virtual size and logical sector size as its parent.</summary>
    /// <exception cref="DiskImageException">ChainInvalid naming both files.</exception>
    public static void CheckCompatible(IDiskLayer child, IDiskLayer parent) =>
        CheckCompatible(child.Path, child.VirtualSize, child.LogicalSectorSize, parent.Path, parent.VirtualSize, parent.LogicalSectorSize);

    /// <summary>Same check from plain values (used before the child exists).</summary>
    public static void CheckCompatible(string childPath, long childSize, int childSector, string parentPath, long parentSize, int parentSector)
    {
        if (childSize != parentSize)
            throw new DiskImageException(ErrorKind.ChainInvalid,
                $"virtual size {childSize} differs from the parent's {parentSize} ({parentPath})", childPath);
        if (childSector != parentSector)
            throw new DiskImageException(ErrorKind.ChainInvalid,
                $"logical sector size {childSector} differs from the parent's {parentSector} ({parentPath})", childPath);
    }
}
