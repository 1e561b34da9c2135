namespace DiskSnapshotEngine.Block;

/// <summary>
/// The status of a range of the virtual disk as one layer sees it. Defined once, used by every driver:
/// reads, copy-on-write, clone, merge, map and compare all start from this question.
/// </summary>
public enum ExtentKind
{
    /// <summary>
    /// This layer holds the bytes, contiguous in its file at <see cref="LayerExtent.FileOffset"/>; or, when the
    /// file offset is -1, stored encoded (qcow2 compressed clusters) and read through <see cref="IEncodedDataLayer"/>.
    /// </summary>
    Data,
    /// <summary>This layer says the range reads as zeros (ZERO block state), whatever the parents hold.</summary>
    Zero,
    /// <summary>This layer has nothing for the range: read the parent, or zeros at the bottom of the chain.</summary>
    NotPresent,
}

/// <summary>A run of the virtual disk with one status in one layer.</summary>
/// <param name="Offset">Virtual offset where the run starts.</param>
/// <param name="Length">Length of the run in bytes (always &gt; 0).</param>
/// <param name="Kind">The status.</param>
/// <param name="FileOffset">For <see cref="ExtentKind.Data"/>, where <paramref name="Offset"/> lives in the layer's file, or -1 when the layer decodes the bytes (<see cref="IsEncoded"/>); otherwise -1.</param>
public readonly record struct LayerExtent(long Offset, long Length, ExtentKind Kind, long FileOffset = -1)
{
    /// <summary>Virtual offset just past the run.</summary>
    public long End => Offset + Length;

    /// <summary>Data that is not plain bytes in the file: read it through <see cref="IEncodedDataLayer.ReadEncoded"/>.</summary>
    public bool IsEncoded => Kind == ExtentKind.Data && FileOffset < 0;
}

/// <summary>A run of the virtual disk as the whole chain resolves it.</summary>
/// <param name="Offset">Virtual offset where the run starts.</param>
/// <param name="Length">Length of the run in bytes.</param>
/// <param name="Kind"><see cref="ExtentKind.Data"/>, <see cref="ExtentKind.Zero"/> (a layer says zero), or <see cref="ExtentKind.NotPresent"/> when none of the layers considered holds the range (it reads as zeros when the whole chain was considered).</param>
/// <param name="LayerIndex">Index in <see cref="DiskChain.Layers"/> of the layer that answered (0 = top), or -1 for <see cref="ExtentKind.NotPresent"/>.</param>
/// <param name="FileOffset">For data, the offset in that layer's file (-1 for encoded data, see <see cref="IsEncoded"/>); otherwise -1.</param>
public readonly record struct ChainExtent(long Offset, long Length, ExtentKind Kind, int LayerIndex, long FileOffset = -1)
{
    /// <summary>Virtual offset just past the run.</summary>
    public long End => Offset + Length;

    /// <summary>Data the layer must decode (no file offset): read it with <see cref="DiskChain.ReadExtent"/>.</summary>
    public bool IsEncoded => Kind == ExtentKind.Data && FileOffset < 0;
}
