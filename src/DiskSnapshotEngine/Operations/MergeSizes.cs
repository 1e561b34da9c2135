using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;

namespace DiskSnapshotEngine.Operations;

/// <summary>
/// A commit between layers of different virtual sizes. A merged image larger than its target grows the target first,
/// in place (old size or new after a crash; the target's new end reads zeros, as the chain already showed there past
/// its old end), before the journal exists: a refusal changes nothing. A merged image smaller than its target leaves
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
                "what depends on the image would see it. Grow the image to the parent's size first (dse resize)", image);
    }

    /// <summary>Grows the target of <paramref name="journal"/> to the merged image's size when it is smaller.</summary>
    /// <exception cref="DiskImageException">Unsupported (the target cannot grow in place, or its own parents would show data there), open and I/O errors.</exception>
    public static void GrowTarget(OperationJournal journal, MergeOptions options)
    {
        long size, targetSize;
        using (var chain = DiskImage.Open(journal.Image, options.Open with { Writable = false }))
        {
            size = chain.VirtualSize;
            targetSize = chain.Layers[journal.Merged.Length].VirtualSize;
        }
        if (targetSize >= size) return;
        string target = journal.Target!;
        using (var probe = DiskImage.OpenLayer(target, writable: false, options.Open.FileOpener))
        {
            if (probe.ParentLink is not null)
                DifferencingResize.Check(probe, target, size, options.Open);
        }
        using var layer = DiskImage.OpenLayer(target, writable: true, options.Open.FileOpener);
        // Growing adds zeros past the target's old end, where the merged chain already read zeros: no reader sees a change.
        layer.PreserveVersionOnWrite = true;
        if (layer is not IResizable resizable || !resizable.TryResizeInPlace(size))
            throw new DiskImageException(ErrorKind.Unsupported,
                $"cannot merge: the image ({size} bytes) is larger than {target} ({targetSize} bytes), which cannot grow in place to hold it; detach the image or clone it instead", journal.Image);
    }
}
