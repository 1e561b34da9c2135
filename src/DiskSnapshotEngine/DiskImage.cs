using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.IO;
using DiskSnapshotEngine.Operations;

namespace DiskSnapshotEngine;

/// <summary>
/// Entry points of the library: create images, create differencing children (linked clones), open an image with
/// its whole parent chain. The CLI is a thin shell over these.
/// </summary>
public static class DiskImage
{
    /// <summary>Creates a new base image (dynamic or fixed); the format comes from the extension unless given.</summary>
    /// <returns>The new image, open for writing.</returns>
    /// <exception cref="DiskImageException">InvalidArgument, AlreadyExists, DiskFull, Io.</exception>
    public static IDiskLayer Create(string path, ImageCreateOptions options, ImageFormat? format = null)
    {
        if (options.Type == ImageType.Differencing)
            ThrowHelper.InvalidArgument("use CreateDifferencing to create a child image", path);
        var driver = format is ImageFormat f ? ImageFormats.Get(f) : ImageFormats.ForNewFile(path);
        return CreateWith(driver, path, options, null);
    }

    /// <summary>
    /// Creates a differencing child of <paramref name="parentPath"/> (a linked clone). Only the parent's headers are
    /// read, so the cost does not depend on the parent's size. Nothing on the parent is written.
    /// </summary>
    /// <returns>The new child, open for writing.</returns>
    /// <exception cref="DiskImageException">InvalidArgument, AlreadyExists, FileNotFound, Unsupported (the format cannot be a child of that parent), DiskFull, Io.</exception>
    public static IDiskLayer CreateDifferencing(string path, string parentPath, ImageFormat? format = null,
        Func<string, bool, IImageFile>? fileOpener = null)
    {
        var driver = format is ImageFormat f ? ImageFormats.Get(f) : ImageFormats.ForNewFile(path);
        using var parent = OpenLayer(parentPath, writable: false, fileOpener);
        var node = FileNode.Of(parentPath, "parent image");
        if (File.Exists(path) && FileNode.Of(path).SameFileAs(node))
            ThrowHelper.InvalidArgument("an image cannot be its own parent", path);
        var options = new ImageCreateOptions(parent.VirtualSize, ImageType.Differencing, null, parent.LogicalSectorSize, parent.PhysicalSectorSize);
        return CreateWith(driver, path, options, ParentDescriptor.Of(parent));
    }

    private static IDiskLayer CreateWith(IImageFormatDriver driver, string path, ImageCreateOptions options, ParentDescriptor? parent)
    {
        if (options.VirtualSize <= 0)
            ThrowHelper.InvalidArgument($"virtual size must be positive (got {options.VirtualSize})", path);
        if (options.LogicalSectorSize is not (512 or 4096))
            ThrowHelper.InvalidArgument($"logical sector size must be 512 or 4096 (got {options.LogicalSectorSize})", path);
        if (options.VirtualSize % options.LogicalSectorSize != 0)
            ThrowHelper.InvalidArgument($"virtual size {options.VirtualSize} is not a multiple of the logical sector size {options.LogicalSectorSize}", path);
        var file = ImageFile.Create(path);
        try
        {
            return driver.Create(file, options, parent);
        }
        catch
        {
            // A half-written new image is useless and must not be mistaken for a good one.
            file.Dispose();
            DurableFiles.TryDelete(file.Path);
            throw;
        }
    }

    /// <summary>Opens one image file without its parents.</summary>
    /// <exception cref="DiskImageException">FileNotFound, Locked, InvalidFormat, CorruptImage, Unsupported, Io.</exception>
    public static IDiskLayer OpenLayer(string path, bool writable, Func<string, bool, IImageFile>? fileOpener = null)
    {
        var file = (fileOpener ?? OpenOptions.ReadOnly.FileOpener)(path, writable);
        try
        {
            return ImageFormats.Detect(file).Open(file, writable);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>Opens an image and resolves its whole parent chain (parents read-only and shared-locked).</summary>
    /// <exception cref="DiskImageException">Any open error of any layer, ParentNotFound, ParentMismatch, ChainInvalid.</exception>
    public static DiskChain Open(string path, OpenOptions? options = null)
    {
        options ??= OpenOptions.ReadOnly;
        return Open(path, options with { Writable = false }, options.Writable ? 0 : -1, options.Writable && options.RefuseWriteWithChildren);
    }

    /// <summary>
    /// Opens a chain with the layer at <paramref name="writableIndex"/> (0 = top, -1 = none) open for writing: the
    /// target of a merge sits below the top. A parent is resolved and verified read-only first, then reopened writable
    /// (taking its exclusive lock) and checked to be the same image.
    /// </summary>
    internal static DiskChain Open(string path, OpenOptions options, int writableIndex, bool refuseWriteWithChildren = false)
    {
        var layers = new List<IDiskLayer>();
        var nodes = new List<FileNode>();
        try
        {
            layers.Add(OpenLayer(path, writableIndex == 0, options.FileOpener));
            // Named after the open: a snapshot command may rename a new file over the path until the open's lock is
            // taken, and the chain must know the file it opened (a stale one would make its parent look like a loop).
            nodes.Add(FileNode.Of(path));
            if (writableIndex == 0 && refuseWriteWithChildren) RefuseIfParent(layers[0], options);
            while (layers[^1].ParentLink is not null)
            {
                if (layers.Count >= ChainRules.MaxDepth)
                    throw new DiskImageException(ErrorKind.ChainInvalid,
                        $"the parent chain is deeper than {ChainRules.MaxDepth} images", path, "parent link");
                var (parent, node) = ParentResolver.Open(layers[^1], options, nodes);
                if (layers.Count == writableIndex) parent = ReopenWritable(parent, options);
                layers.Add(parent);
                nodes.Add(node);
            }
            return new DiskChain(layers);
        }
        catch
        {
            foreach (var l in layers) l.Dispose();
            throw;
        }
    }

    private static IDiskLayer ReopenWritable(IDiskLayer parent, OpenOptions options)
    {
        var identity = parent.Identity;
        string parentPath = parent.Path;
        parent.Dispose();
        var writable = OpenLayer(parentPath, writable: true, options.FileOpener);
        if (writable.Identity != identity)
        {
            writable.Dispose();
            throw new DiskImageException(ErrorKind.ParentMismatch, "the parent changed while it was being opened", parentPath);
        }
        return writable;
    }

    // Parents stay immutable: a child records its parent's content version, so a write would break it (or, with the
    // override, make it read different data).
    private static void RefuseIfParent(IDiskLayer layer, OpenOptions options)
    {
        var folders = new List<string> { Operations.Dependents.FolderOf(layer.Path) };
        folders.AddRange(options.SearchPaths.Where(Directory.Exists));
        var children = Operations.Dependents.ChildrenOf(layer, folders, options.FileOpener);
        if (children.Count > 0)
            throw new DiskImageException(ErrorKind.ReadOnly,
                $"the image has {children.Count} child image(s) that read through it ({string.Join(", ", children)}); writing would change what they read " +
                "(merge or delete them first, write into a child instead, or force the write)", layer.Path);
    }
}
