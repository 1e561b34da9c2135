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

    /// <summary>
    /// True (the default): the clone's data is on disk (fsync) before it is renamed into place. False (<c>--no-sync</c>):
    /// it is renamed into place as soon as it is complete in the page cache, as <c>cp</c> and <c>qemu-img convert</c>
    /// do; a power loss or kernel crash soon after may then leave the published clone incomplete. The source is never at risk.
    /// </summary>
    public bool Durable { get; init; } = true;
}
