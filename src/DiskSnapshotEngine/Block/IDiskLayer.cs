using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Block;

/// <summary>
/// One image file in a chain, as its format driver sees it. A layer answers for itself only: it never opens or
/// reads its parent. The <see cref="DiskChain"/> resolves <see cref="ExtentKind.NotPresent"/> ranges through the
/// parents, zero-fills at the bottom and performs copy-on-write for partial writes.
/// Layers are not thread-safe for writes; concurrent reads are safe.
/// </summary>
public interface IDiskLayer : IDisposable
{
    /// <summary>Absolute path of the image file.</summary>
    string Path { get; }

    /// <summary>The on-disk format.</summary>
    ImageFormat Format { get; }

    /// <summary>Dynamic, fixed or differencing.</summary>
    ImageType Type { get; }

    /// <summary>Size of the virtual disk in bytes.</summary>
    long VirtualSize { get; }

    /// <summary>Logical sector size (512 or 4096): the unit of the virtual disk's addressing.</summary>
    int LogicalSectorSize { get; }

    /// <summary>Physical sector size the image advertises.</summary>
    int PhysicalSectorSize { get; }

    /// <summary>Allocation unit (VHDX payload block, VDI block); raw reports a nominal 1 MiB.</summary>
    int BlockSize { get; }

    /// <summary>True when the layer was opened for writing.</summary>
    bool IsWritable { get; }

    /// <summary>Identity and content version, as children record them.</summary>
    ImageIdentity Identity { get; }

    /// <summary>How to find and verify the parent; null for a base image.</summary>
    ParentLink? ParentLink { get; }

    /// <summary>
    /// When true, content changes made from now on do not give the layer a new <see cref="ImageIdentity.Version"/>
    /// (VHDX DataWriteGuid, VDI uuidModify). Only operations that keep every reader's view unchanged set it: a merge into a
    /// parent whose only child is the merged image, a rebase or pull that copies into a layer the same bytes its parent showed.
    /// Default false: the first content change of a session gives a new version, so children detect a modified parent.
    /// </summary>
    bool PreserveVersionOnWrite { get; set; }

    /// <summary>The file data extents are read from (for VHDX read-only opens of a dirty log, the in-memory replay).</summary>
    IImageFile File { get; }

    /// <summary>
    /// Status of the longest run starting at <paramref name="offset"/> that has one status in this layer,
    /// capped at <paramref name="length"/>. For data the run is contiguous in the file.
    /// </summary>
    /// <exception cref="Errors.DiskImageException">CorruptImage when a map entry is invalid; OutOfBounds for a range outside the disk.</exception>
    LayerExtent GetStatus(long offset, long length);

    /// <summary>
    /// The smallest range containing [<paramref name="offset"/>, +<paramref name="length"/>) that this layer needs to be
    /// given in full before it can store those bytes: the range itself when it can be written in place, otherwise
    /// an aligned range (a sector for VHDX sector bitmaps, a whole block for a new VDI block) that the chain fills
    /// from the current content (copy-on-write) before calling <see cref="Write"/>. Never crosses a block boundary
    /// when the input does not.
    /// </summary>
    (long Offset, long Length) GetWriteSpan(long offset, long length);

    /// <summary>
    /// Stores bytes. The range must be one <see cref="GetWriteSpan"/> accepts as-is. A whole block of zeros over an
    /// unallocated block is recorded as a ZERO block without allocating.
    /// </summary>
    /// <exception cref="Errors.DiskImageException">ReadOnly, OutOfBounds, DiskFull, Io.</exception>
    void Write(long offset, ReadOnlySpan<byte> data);

    /// <summary>
    /// Makes a block-aligned range read as zeros in this layer (ZERO state, even over a parent's data), releasing
    /// nothing it does not need to. Unaligned edges are the caller's concern (the chain writes them as data).
    /// </summary>
    void WriteZeroes(long offset, long length);

    /// <summary>Commits pending metadata (through the VHDX log where there is one) and makes everything durable.</summary>
    void Flush();

    /// <summary>Records a new parent (relink after merge or rebase); the layer's content in itself is unchanged.</summary>
    void SetParent(ParentDescriptor parent);

    /// <summary>Checks the layer's own structures; never writes.</summary>
    CheckReport Check();

    /// <summary>Format-specific facts for <c>dse info</c> (GUIDs, block size, header fields), in display order.</summary>
    IReadOnlyList<KeyValuePair<string, string>> Details { get; }
}
