using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Operations;

/// <summary>What a reset did.</summary>
/// <param name="Image">The reset image.</param>
/// <param name="Parent">Its parent (unchanged).</param>
/// <param name="SizeBefore">File size before: the space the discarded writes took.</param>
/// <param name="SizeAfter">File size after (an empty child).</param>
public sealed record ResetResult(string Image, string Parent, long SizeBefore, long SizeAfter);

/// <summary>
/// Reset: throws away a linked clone's own writes in constant time. An empty child of the same parent, with the same
/// format, block size, sector sizes and disk id (a new content version), is written under a temporary name, made
/// durable and renamed over the clone in one atomic step: a crash leaves the old clone or the empty one, never a mix.
/// Refused on a base image (there is nothing to fall back to), on a clone other images read through and on a sealed clone.
/// </summary>
public static class Reset
{
    /// <summary>Temporary file suffix.</summary>
    public const string TempSuffix = ".dse-reset";

    /// <summary>Resets <paramref name="image"/> to its parent's content.</summary>
    /// <exception cref="DiskImageException">InvalidArgument (a base image), ReadOnly (children, listed; a sealed clone), Unsupported (what the new file would drop: qcow2 internal snapshots or bitmaps, VHDX regions dse does not know), Locked, open and I/O errors.</exception>
    public static ResetResult Run(string image, OpenOptions? options = null)
    {
        options ??= OpenOptions.ReadOnly;
        using var rewrite = ImageRewrite.Begin(image, options, TempSuffix, "reset");
        image = rewrite.Named;
        var chain = rewrite.Chain;
        var src = chain.Top;
        if (src.ParentLink is null || chain.Layers.Count < 2)
            ThrowHelper.InvalidArgument("the image has no parent: a reset would leave nothing to read (it is a base image, not a linked clone)", image);
        rewrite.RefuseLoss();
        Dependents.RefuseChildren(src, options, "reset");
        // A sealed clone may have clones elsewhere that read through it: a reset would change what they read.
        Seals.Check(src, options.Sealed, "reset it");
        long sizeBefore = src.File.Length;
        // Same disk id, so a hypervisor keeps knowing the disk; a new version, since the content changed. qcow2 has no
        // disk id: dse's own id of it is kept instead, which a parent's seal may record as its sole clone.
        var identity = new ImageIdentity(src.Identity.Id == Guid.Empty ? Seals.CloneIdOf(src) : src.Identity.Id, Guid.NewGuid());
        var createOptions = new ImageCreateOptions(src.VirtualSize, ImageType.Differencing, src.BlockSize,
            src.LogicalSectorSize, src.PhysicalSectorSize, identity);
        try
        {
            var (file, target) = rewrite.CreateTarget(createOptions, ParentDescriptor.Of(chain.Layers[1]));
            using (target)
            {
                target.Flush();
                file.MakeDurable();
                if (target.Identity.Id != src.Identity.Id)
                    throw new DiskImageException(ErrorKind.Unsupported,
                        $"the {src.Format.Name()} driver did not keep the disk id; the image is left untouched", image);
            }
            rewrite.Publish();
        }
        catch
        {
            rewrite.Discard();
            throw;
        }
        return new ResetResult(rewrite.Image, chain.Layers[1].Path, sizeBefore, new FileInfo(rewrite.Image).Length);
    }
}
