namespace DiskSnapshotEngine.Block;

/// <summary>
/// A layer that can say where in its file the bytes of a virtual range go, mapping the range as a write would but
/// without writing it, so that a copy can fill those file bytes by other means (shared extents, FICLONERANGE).
/// </summary>
internal interface IPlaceableLayer
{
    /// <summary>
    /// Maps the start of [<paramref name="offset"/>, +<paramref name="length"/>) to a file range of this layer as a
    /// write of those bytes would (a fresh block, or the block the layer already holds whole): its file offset and how
    /// many bytes it covers (up to the end of the block). False, having changed nothing, where the range cannot be
    /// placed without a write (a block held in part, a differencing block that would hide its parent). The caller
    /// fills the placed file range, or writes the data normally, before the layer's next Flush or TryPlace: until then
    /// the range reads whatever the file holds there (zeros for a fresh block).
    /// </summary>
    /// <exception cref="Errors.DiskImageException">ReadOnly, OutOfBounds, DiskFull, Io.</exception>
    bool TryPlace(long offset, long length, out long fileOffset, out long placed);
}
