using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Operations;

/// <summary>
/// The frame of the verbs that rewrite an image into a temporary file beside it and rename that over the original
/// (compact, reset). The image is locked exclusively from start to end: no writer changes it meanwhile, no second run
/// shares the temporary file, and the file renamed over it stays locked until the end. A temporary file a crashed run
/// left is removed first; the chain is opened read-only (the original is only read until the rename).
/// </summary>
internal sealed class ImageRewrite : IDisposable
{
    private readonly LockScope _scope;
    private readonly string _verb;

    private ImageRewrite(LockScope scope, string verb, NamedImage image, string temp, DiskChain chain)
    {
        _scope = scope;
        _verb = verb;
        Image = image.File;
        Named = image.Path;
        Temp = temp;
        Chain = chain;
    }

    /// <summary>The image's full path (a symbolic link's target).</summary>
    public string Image { get; }

    /// <summary>The image's full path as the user gave it (a symbolic link, when it is one): what refusals name.</summary>
    public string Named { get; }

    /// <summary>The temporary file beside it (the image's path and the verb's suffix).</summary>
    public string Temp { get; }

    /// <summary>The image and its parents, open read-only.</summary>
    public DiskChain Chain { get; }

    /// <summary>
    /// Locks <paramref name="image"/>, removes a stale temporary file and opens the chain, for <paramref name="verb"/>
    /// (named in refusals). A folder this user may not create the temporary file in is refused first, naming the image.
    /// </summary>
    /// <exception cref="Errors.DiskImageException">ReadOnly (the image's folder), Locked, open and I/O errors.</exception>
    public static ImageRewrite Begin(string image, OpenOptions options, string tempSuffix, string verb)
    {
        // Through a symbolic link, the file renamed over is the link's target and the chain is opened at the link (NamedImage).
        var named = NamedImage.Of(image);
        string target = named.File;
        FolderAccess.Require(target, $"{verb} it", $"{verb} rewrites the image beside itself, then renames it over", named.Path);
        var scope = LockScope.Begin();
        try
        {
            scope.Lock(target);
            string temp = target + tempSuffix;
            DurableFiles.TryDelete(temp);
            return new ImageRewrite(scope, verb, named, temp, DiskImage.Open(named.Path, options with { Writable = false }));
        }
        catch
        {
            scope.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Refuses (Unsupported) when the image holds what a rewrite into a new file would drop (<see cref="IRewriteLoss"/>):
    /// one check and one message for every verb that rewrites (compact, reset). <see cref="CreateTarget"/> runs it
    /// too; a verb calls it earlier to order its refusals.
    /// </summary>
    public void RefuseLoss()
    {
        if (Chain.Top is IRewriteLoss { RewriteWouldLose: string lost })
            throw new Errors.DiskImageException(Errors.ErrorKind.Unsupported, $"{_verb} rewrites the image into a new file, which would drop {lost}", Named);
    }

    /// <summary>
    /// Creates the temporary file (held by the scope) and a new image in it, of the original's format, carrying over
    /// what the original's file alone holds (<see cref="IRewriteLoss.CarryOver"/>) once <see cref="RefuseLoss"/> found
    /// nothing it would drop; the caller owns both. Nothing is left open when the driver refuses.
    /// </summary>
    public (TempImageFile File, IDiskLayer Layer) CreateTarget(ImageCreateOptions options, ParentDescriptor? parent)
    {
        RefuseLoss();
        var file = TempImageFile.Create(Temp, Named);
        IDiskLayer? layer = null;
        try
        {
            layer = ImageFormats.Get(Chain.Top.Format).Create(file, options, parent);
            (Chain.Top as IRewriteLoss)?.CarryOver(layer);
            return (file, layer);
        }
        catch
        {
            layer?.Dispose();
            file.Dispose();
            throw;
        }
    }

    /// <summary>Renames the complete, durable temporary file over the original in one atomic step.</summary>
    public void Publish() => DurableFiles.Rename(Temp, Image, overwrite: true);

    /// <summary>Removes the temporary file after a failure (the original is untouched).</summary>
    public void Discard() => DurableFiles.TryDelete(Temp);

    /// <summary>Closes the chain, then releases the locks.</summary>
    public void Dispose()
    {
        Chain.Dispose();
        _scope.Dispose();
    }
}
