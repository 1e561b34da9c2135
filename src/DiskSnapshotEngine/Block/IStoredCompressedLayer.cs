namespace DiskSnapshotEngine.Block;

/// <summary>
/// A capability of layers that store some clusters compressed (qcow2): a rewrite of the layer into a layer of the same
/// kind (compact) hands the stored bytes over as they are, so compressed data stays compressed and is not decoded.
/// </summary>
internal interface IStoredCompressedLayer
{
    /// <summary>True when bytes stored by <paramref name="source"/> decode the same in this layer (same cluster size and compression type).</summary>
    bool CanStoreCompressedFrom(IStoredCompressedLayer source);

    /// <summary>The stored bytes of the compressed cluster that starts at <paramref name="offset"/>, or null when it is not compressed.</summary>
    /// <exception cref="Errors.DiskImageException">CorruptImage when the stored range lies outside the file.</exception>
    byte[]? ReadStoredCompressed(long offset);

    /// <summary>
    /// Stores <paramref name="stored"/> (from <see cref="ReadStoredCompressed"/> of a compatible layer) as the compressed
    /// cluster at <paramref name="offset"/>; false, and nothing changed, when it does not fit in one cluster (write it decoded then).
    /// </summary>
    bool WriteStoredCompressed(long offset, ReadOnlySpan<byte> stored);
}
