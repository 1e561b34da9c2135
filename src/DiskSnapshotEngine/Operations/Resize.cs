using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Operations;

/// <summary>What a resize did.</summary>
/// <param name="Image">The image.</param>
/// <param name="OldSize">Virtual size before.</param>
/// <param name="NewSize">Virtual size now.</param>
/// <param name="InPlace">True when only metadata changed; false when the image was rewritten beside itself and renamed over.</param>
public sealed record ResizeResult(string Image, long OldSize, long NewSize, bool InPlace);

/// <summary>
/// Resize: changes an image's virtual size (a base, or a differencing VHDX or qcow2), identity and content kept (a grown disk reads zeros past the old end).
/// In place where the format allows it in one atomic step (raw: the file length; VHDX: the size goes through the log,
/// the BAT moving to a larger region at the end of the file in the same log entry when its region lacks room; qcow2: growth within the L1 table's clusters; VDI: the block map has room before the first data block); otherwise the image is rewritten beside itself with the new size and renamed over (as compact
/// does), so a crash leaves the old image or the new one. A smaller size needs <c>shrink</c> and is refused, naming
/// the offset, when data lies beyond the new end. A differencing VHDX or qcow2 image resizes too (Hyper-V and qemu do,
/// see <see cref="DifferencingResize"/>); a differencing VDI or VHD is refused. An image with children is refused:
/// they would no longer match it, as is a sealed image (children elsewhere may read through it).
/// </summary>
public static class Resize
{
    /// <summary>Resizes <paramref name="image"/> to <paramref name="newSize"/> bytes.</summary>
    /// <exception cref="DiskImageException">InvalidArgument (bad size, data beyond a smaller size, no --shrink), Unsupported (a child, a fixed image
    /// of a block format), ReadOnly (children, listed; a sealed image), DiskFull, Cancelled, Locked, open and I/O errors.</exception>
    public static async Task<ResizeResult> RunAsync(string image, long newSize, bool shrink, OpenOptions? options = null,
        IProgress<OperationProgress>? progress = null, CancellationToken cancel = default)
    {
        options ??= OpenOptions.ReadOnly;
        image = Path.GetFullPath(image);
        using var scope = LockScope.Begin();
        scope.Lock(image);
        long old;
        using (var layer = DiskImage.OpenLayer(image, writable: false, options.FileOpener))
        {
            old = layer.VirtualSize;
            if (newSize <= 0 || newSize % layer.LogicalSectorSize != 0)
                ThrowHelper.InvalidArgument($"the new size {newSize} must be a positive multiple of the logical sector size {layer.LogicalSectorSize}", image);
            if (newSize == old) return new ResizeResult(image, old, newSize, true);
            if (layer.ParentLink is not null) DifferencingResize.Check(layer, image, newSize, options);
            Dependents.RefuseChildren(layer, options, "resize");
            Seals.Check(layer, options.Sealed, "resize it");
            if (newSize < old)
            {
                if (!shrink)
                    ThrowHelper.InvalidArgument($"{newSize} bytes is smaller than the current {old}: pass --shrink to cut the disk (allowed only when no data lies beyond the new end)", image);
                if (layer.ParentLink is null && FirstDataAtOrAfter(layer, newSize) is long at)
                    ThrowHelper.InvalidArgument($"data lies at offset {at}, beyond the new end {newSize}: the disk cannot shrink below {MinimumSize(layer)} bytes", image);
            }
            if (layer.Type == ImageType.Fixed && layer.Format != ImageFormat.Raw)
                throw new DiskImageException(ErrorKind.Unsupported,
                    $"a fixed {layer.Format.ToString().ToLowerInvariant()} image is not resized here; clone it to a dynamic image first", image);
        }
        using (var layer = DiskImage.OpenLayer(image, writable: true, options.FileOpener))
        {
            if (layer is IResizable r && r.TryResizeInPlace(newSize))
                return new ResizeResult(image, old, newSize, true);
        }
        await Compact.RunAsync(image, options, progress, newSize, cancel).ConfigureAwait(false);
        return new ResizeResult(image, old, newSize, false);
    }

    /// <summary>The smallest size the disk can shrink to: the end of its last data, in whole logical sectors.</summary>
    public static long MinimumSize(IDiskLayer layer)
    {
        ArgumentNullException.ThrowIfNull(layer);
        // The same walk as a chain's: a one-layer chain over the caller's layer costs an array. It is not disposed: the
        // layer stays the caller's.
#pragma warning disable CA2000
        return MinimumSize(new DiskChain([layer]));
#pragma warning restore CA2000
    }

    /// <summary>
    /// The smallest size the chain's top can shrink to (what <c>resize --shrink</c> accepts): the end of the last data
    /// the chain shows within the top's size, its parents' included, in whole logical sectors.
    /// </summary>
    public static long MinimumSize(DiskChain chain)
    {
        ArgumentNullException.ThrowIfNull(chain);
        long end = chain.GetExtents(0, chain.VirtualSize).LastOrDefault(e => e.Kind == ExtentKind.Data).End;
        return SpanHelpers.AlignUp(end, chain.Top.LogicalSectorSize);
    }

    private static long? FirstDataAtOrAfter(IDiskLayer layer, long offset)
    {
        for (long off = offset; off < layer.VirtualSize;)
        {
            var e = layer.GetStatus(off, layer.VirtualSize - off);
            if (e.Kind == ExtentKind.Data) return e.Offset;
            off = e.Offset + e.Length;
        }
        return null;
    }
}
