using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;

namespace DiskSnapshotEngine.Operations;

/// <summary>
/// The rules for resizing a differencing image, from what each format's own hypervisor does with a child whose size
/// differs from its parent's. Hyper-V resizes a differencing VHDX (Resize-VHD); qemu resizes an overlay and reads zeros
/// past its backing file's end. VirtualBox's VDI backend refuses any read past an image's own size, and its chain reads
/// a child's free block from the parent at the same offset, so a VDI child larger than its parent fails there; and
/// ExpandVirtualDisk invalidates a differencing VHD chain. Past a layer's end dse's chain reads zeros (see
/// <see cref="DiskChain"/>), so a grown child must not reveal parent data and a shrunk one must not cut any visible data.
/// </summary>
internal static class DifferencingResize
{
    /// <summary>Refuses what the format's peers do not allow, and any size change that would alter what the child shows.</summary>
    /// <exception cref="DiskImageException">Unsupported (VDI, VHD), InvalidArgument (visible data past a smaller size, parent data a larger one would reveal).</exception>
    public static void Check(IDiskLayer layer, string image, long newSize, OpenOptions options)
    {
        if (layer.Format is ImageFormat.Vdi)
            throw new DiskImageException(ErrorKind.Unsupported,
                "a differencing VDI keeps its parent's size: VirtualBox reads a child's free blocks from its parent at the same offset and fails past the parent's end; resize the base (with no children) or detach this image first", image);
        if (layer.Format is not (ImageFormat.Vhdx or ImageFormat.Qcow2))
            throw new DiskImageException(ErrorKind.Unsupported,
                $"a differencing {layer.Format.ToString().ToLowerInvariant()} image keeps its parent's size (its hypervisor does not resize one); resize the base (with no children) or detach this image first", image);
        using var chain = DiskImage.Open(image, options with { Writable = false });
        var layers = chain.Layers;
        long old = layer.VirtualSize;
        if (newSize < old && FirstData(layers, 0, newSize, old) is long cut)
        {
            ThrowHelper.InvalidArgument(
                $"data lies at offset {cut} (in the image or a parent it shows), beyond the new end {newSize}: the disk cannot shrink below {Resize.MinimumSize(chain)} bytes", image);
        }
        if (newSize > old && FirstData(layers, 1, old, newSize) is long shown)
            ThrowHelper.InvalidArgument(
                $"the parent {layers[1].Path} holds data at offset {shown}, past this image's end {old}: growing would reveal it; " +
                (shown > old ? $"grow it only to {shown} bytes or pull the parent first" : "make it independent first (dse detach, or a full clone)"), image);
    }

    /// <summary>The first offset in [from, to) where layer <paramref name="i"/> and those below show data, a layer reading zeros past its own end.</summary>
    internal static long? FirstData(IReadOnlyList<IDiskLayer> layers, int i, long from, long to)
    {
        if (i >= layers.Count) return null;
        to = Math.Min(to, layers[i].VirtualSize);
        for (long at = from; at < to;)
        {
            var e = layers[i].GetStatus(at, to - at);
            if (e.Kind == ExtentKind.Data) return at;
            if (e.Kind == ExtentKind.NotPresent && FirstData(layers, i + 1, at, at + e.Length) is long below) return below;
            at += e.Length;
        }
        return null;
    }
}
