using DiskSnapshotEngine.Block;

namespace DiskSnapshotEngine.Operations;

/// <summary>One run of the virtual disk in a map.</summary>
/// <param name="Offset">Virtual offset.</param>
/// <param name="Length">Bytes.</param>
/// <param name="Kind">Data, Zero (a layer says zero) or NotPresent (no layer holds it: reads as zeros).</param>
/// <param name="LayerIndex">Index of the layer that answers (0 = the image itself), or -1.</param>
/// <param name="File">Path of that layer's file, or null.</param>
/// <param name="FileOffset">Where the data sits in that file, or -1 (also for data the layer stores encoded, such as qcow2 compressed clusters).</param>
public sealed record MapEntry(long Offset, long Length, ExtentKind Kind, int LayerIndex, string? File, long FileOffset);

/// <summary>The map of an image: which ranges are data, zero or absent, and which layer's file holds them.</summary>
public static class ImageMap
{
    /// <summary>Every run of <paramref name="chain"/>, in order, lazily (memory does not grow with the image).</summary>
    public static IEnumerable<MapEntry> Enumerate(DiskChain chain)
    {
        foreach (var e in chain.GetExtents(0, chain.VirtualSize))
            yield return new MapEntry(e.Offset, e.Length, e.Kind, e.LayerIndex,
                e.LayerIndex >= 0 ? chain.Layers[e.LayerIndex].Path : null, e.FileOffset);
    }
}
