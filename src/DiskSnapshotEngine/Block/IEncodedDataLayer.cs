namespace DiskSnapshotEngine.Block;

/// <summary>
/// A capability of layers that store some data in a form the file cannot be read as (qcow2 compressed clusters):
/// <see cref="IDiskLayer.GetStatus"/> reports such ranges as <see cref="ExtentKind.Data"/> with no file offset
/// (<see cref="LayerExtent.IsEncoded"/>), and this reads them decoded. The chain, <c>map</c> and the copy loops
/// call it for those extents only; every other data extent stays a plain file read.
/// </summary>
internal interface IEncodedDataLayer
{
    /// <summary>
    /// Reads the layer's own content of [<paramref name="offset"/>, +buffer.Length), a range the layer reported as
    /// <see cref="ExtentKind.Data"/> (encoded or not) or <see cref="ExtentKind.Zero"/>.
    /// </summary>
    /// <exception cref="Errors.DiskImageException">CorruptImage when the encoded data does not decode; Io.</exception>
    void ReadEncoded(long offset, Span<byte> buffer);
}
