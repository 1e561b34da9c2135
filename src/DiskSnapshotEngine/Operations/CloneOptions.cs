using DiskSnapshotEngine.Block;

namespace DiskSnapshotEngine.Operations;

/// <summary>Parameters of a full clone.</summary>
/// <param name="Format">Format of the clone, or null to choose it from the destination's extension.</param>
/// <param name="Type">Dynamic (only data blocks allocated) or fixed.</param>
/// <param name="BlockSize">Allocation unit of the clone, or null for the format's default.</param>
public sealed record CloneOptions(ImageFormat? Format = null, ImageType Type = ImageType.Dynamic, int? BlockSize = null)
{
    /// <summary>How to open the source chain (search paths for parents, fault injection in tests).</summary>
    public OpenOptions Open { get; init; } = OpenOptions.ReadOnly;

    /// <summary>
    /// The clone's virtual size when it must be larger than the source's (the added tail reads as zeros), as for a disk
    /// Azure takes (a whole number of MiB); null for the source's size.
    /// </summary>
    public long? VirtualSize { get; init; }
}
