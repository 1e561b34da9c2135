using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;

namespace DiskSnapshotEngine.Operations;

/// <summary>
/// A commit between layers of different virtual sizes. A merged image larger than its target grows the target first,
/// in place or by an atomic rewrite (old size or new after a crash; the target's new end reads zeros, as the chain
/// already showed there past its old end), before the journal exists: a refusal changes nothing. A merged image smaller than its target leaves
/// the target its size, as qemu-img commit does, when nothing would change for a reader: the target holds no data past
/// the image's end or no image is relinked to it; never when it would replace the image (the disk's size would change).
/// </summary>
internal static class MergeSizes
{
    /// <summary>Refuses a commit into a larger target that would replace the image, or show its data past the image's end to a child relinked to it.</summary>
    /// <exception cref="DiskImageException">Unsupported naming both sizes and the offset of that data.</exception>
    public static void CheckSmallerImage(DiskChain chain, int a, bool relinks, bool replaces, string image)
    {
        long size = chain.VirtualSize, targetSize = chain.Layers[a].VirtualSize;
        if (targetSize <= size) return;
        // The target renamed over the image would change the disk's size.
        if (replaces)
            throw new DiskImageException(ErrorKind.Unsupported,
                $"cannot merge: the image ({size} bytes) is smaller than {chain.Layers[a].Path} ({targetSize} bytes), which would replace it; grow the image to the parent's size first (dse resize)", image);
        if (!relinks) return;
        if (DifferencingResize.FirstData(chain.Layers, a, size, targetSize) is long at)
            throw new DiskImageException(ErrorKind.Unsupported,
                $"cannot merge: the image ({size} bytes) is smaller than {chain.Layers[a].Path} ({targetSize} bytes), which holds data at offset {at} past the image's end; " +
                "what depends on the image would see it. Merge the images above it into it first, then grow it to the parent's size (dse resize)", image);
    }

    /// <summary>
    /// Grows the target of <paramref name="journal"/> to the merged image's size when it is smaller: in place where the
    /// format allows it, otherwise rewritten beside itself and renamed over with its identity and version (as resize does).
    /// </summary>
    /// <exception cref="DiskImageException">Unsupported (a fixed target, or its own parents would show data there), DiskFull, Cancelled, open and I/O errors.</exception>
    public static async Task GrowTargetAsync(OperationJournal journal, MergeOptions options, CancellationToken cancel)
    {
        var (size, targetSize) = SizesOf(journal, options);
        if (targetSize >= size) return;
        string target = journal.Target!;
        CheckGrowth(journal.Image, target, size, targetSize, options);
        // Growing adds zeros past the target's old end, where the merged chain already read zeros: no reader sees a change.
        using (var layer = DiskImage.OpenLayer(target, writable: true, options.Open.FileOpener))
        {
            if (layer is IResizable resizable && resizable.TryResizeInPlace(size)) return;
        }
        await Compact.RunAsync(target, options.Open, null, size, cancel).ConfigureAwait(false);
    }

    /// <summary>Refuses, changing nothing, what <see cref="GrowTargetAsync"/> would refuse for the commit <paramref name="journal"/> plans.</summary>
    /// <exception cref="DiskImageException">Unsupported (a fixed target, or its own parents would show data there), open errors.</exception>
    public static void CheckGrowth(OperationJournal journal, MergeOptions options)
    {
        var (size, targetSize) = SizesOf(journal, options);
        if (targetSize < size) CheckGrowth(journal.Image, journal.Target!, size, targetSize, options);
    }

    private static (long Size, long TargetSize) SizesOf(OperationJournal journal, MergeOptions options)
    {
        using var chain = DiskImage.Open(journal.Image, options.Open with { Writable = false });
        return (chain.VirtualSize, chain.Layers[journal.Merged.Length].VirtualSize);
    }

    private static void CheckGrowth(string image, string target, long size, long targetSize, MergeOptions options)
    {
        using var probe = DiskImage.OpenLayer(target, writable: false, options.Open.FileOpener);
        if (probe.ParentLink is not null)
            DifferencingResize.Check(probe, target, size, options.Open);
        // A fixed image of a block format never grows in place (a raw file does: its length is its size).
        if (probe.Type == ImageType.Fixed && probe.Format != ImageFormat.Raw)
            throw new DiskImageException(ErrorKind.Unsupported,
                $"cannot merge: the image ({size} bytes) is larger than the fixed {target} ({targetSize} bytes), which cannot grow to hold it; detach the image or clone it instead", image);
    }
}
