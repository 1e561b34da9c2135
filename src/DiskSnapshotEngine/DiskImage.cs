using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.IO;
using DiskSnapshotEngine.Operations;

namespace DiskSnapshotEngine;

/// <summary>
/// Entry points of the library: create images, open an image with its whole parent chain (a <see cref="DiskChain"/>
/// to read and write), seal and unseal. What works on whole images is beside it: <see cref="LinkedClone"/>,
/// <see cref="FullClone"/>, <see cref="Merge"/> and the other operations in <c>DiskSnapshotEngine.Operations</c>,
/// snapshots in <see cref="Snapshots.DiskSnapshots"/>. The CLI is a thin shell over these.
/// </summary>
public static class DiskImage
{
    /// <summary>Creates a new dynamic base image of <paramref name="virtualSize"/> bytes; the extension names the format.</summary>
    /// <returns>The new image, open for writing.</returns>
    /// <exception cref="DiskImageException">InvalidArgument, AlreadyExists, DiskFull, Io.</exception>
    public static IDiskLayer Create(string path, long virtualSize) => Create(path, new ImageCreateOptions(virtualSize));

    /// <summary>Creates a new base image (dynamic or fixed); the format comes from the extension unless given.</summary>
    /// <returns>The new image, open for writing.</returns>
    /// <exception cref="DiskImageException">InvalidArgument, AlreadyExists, DiskFull, Io.</exception>
    public static IDiskLayer Create(string path, ImageCreateOptions options, ImageFormat? format = null)
    {
        if (options.Type == ImageType.Differencing)
            ThrowHelper.InvalidArgument("use LinkedClone.Create to create a child image", path);
        var driver = format is ImageFormat f ? ImageFormats.Get(f) : ImageFormats.ForNewFile(path);
        return CreateWith(driver, path, options, null);
    }

    /// <summary>
    /// Creates a differencing child of <paramref name="parentPath"/> (a linked clone). Only headers and metadata are
    /// read, so the cost does not depend on the parent's size. The parent's content is never written: it is sealed
    /// (<paramref name="sealParentAs"/>, see <see cref="SealReasons"/>) so that no dse verb changes it while the child
    /// reads through it, wherever the child lives. Sealing writes only the mark, once (its version stays, so other
    /// children stay linked); a parent the user cannot write (file mode, read-only file system) is left unsealed.
    /// </summary>
    /// <returns>The new child, open for writing.</returns>
    /// <exception cref="DiskImageException">InvalidArgument, AlreadyExists, FileNotFound, Unsupported (the format cannot be a child of that parent),
    /// Locked (the parent must be sealed but another process has it open), DiskFull, Io.</exception>
    internal static IDiskLayer CreateDifferencing(string path, string parentPath, ImageFormat? format = null,
        Func<string, bool, IImageFile>? fileOpener = null, SealReasons sealParentAs = SealReasons.Golden, string? named = null) =>
        CreateDifferencing(path, parentPath, format, fileOpener, sealParentAs, out _, named);

    /// <summary>
    /// As above; <paramref name="parentSeal"/> tells what became of the parent's seal (what the CLI notes). A temporary
    /// <paramref name="path"/> beside <paramref name="named"/>, the file the user gave, is refused naming that file.
    /// </summary>
    internal static IDiskLayer CreateDifferencing(string path, string parentPath, ImageFormat? format,
        Func<string, bool, IImageFile>? fileOpener, SealReasons sealParentAs, out ParentSeal parentSeal, string? named = null)
    {
        var driver = format is ImageFormat f ? ImageFormats.Get(f) : ImageFormats.ForNewFile(path);
        ParentDescriptor parent;
        int physicalSectorSize;
        // The child's ids are chosen now: the parent's seal records the first clone's id before the clone exists (a
        // failed create leaves a record naming no file, which only makes the next clone turn it to "unknown").
        var childIdentity = new ImageIdentity(Guid.NewGuid(), Guid.NewGuid());
        NewReaderSeal seal;
        using (var top = OpenLayer(parentPath, writable: false, fileOpener))
        {
            var node = FileNode.Of(parentPath, "parent image");
            if (FileNode.IsRegularFile(path) && FileNode.Of(path).SameFileAs(node))
                ThrowHelper.InvalidArgument("an image cannot be its own parent", path);
            // A FIFO or a dangling link too, as create and a full clone say; a temporary file left is refused by the create.
            if (named is null && (File.Exists(path) || Directory.Exists(path)))
                throw new DiskImageException(ErrorKind.AlreadyExists, "the file already exists; refusing to overwrite it", Path.GetFullPath(path));
            parent = ParentDescriptor.Of(top);
            physicalSectorSize = top.PhysicalSectorSize;
            seal = NewReaderSeal.For(top, sealParentAs, childIdentity.Id);
        }
        RefuseTooDeep(path, parentPath, fileOpener);
        driver.CheckParent(path, parent); // a refused combination (a VHDX child of a qcow2) leaves the parent unsealed
        // The seal is written once the child's file exists (created exclusively and locked): whatever refuses that
        // create (the name taken, a missing or read-only folder, a full disk) leaves the parent as it was.
        ParentSeal? outcome = null;
        var options = new ImageCreateOptions(parent.VirtualSize, ImageType.Differencing, null, parent.LogicalSectorSize, physicalSectorSize, childIdentity);
        // A child holds copies of parent sectors (a qcow2's or VDI's partial clusters): created no more readable than its
        // parent, so no other user can open it before its mode says so.
        var child = CreateWith(driver, path, options, parent, () => outcome = seal.Apply(fileOpener), FileOwnership.CreateModeFor([parentPath]), named);
        parentSeal = outcome!;
        return child;
    }

    // A child of a chain already MaxDepth deep, or of one that loops, could never be opened: refused (ChainInvalid)
    // before anything is written, the parent's seal included. A parent chain that does not open for another reason
    // (a missing grandparent, say) is the child's business later, as before.
    private static void RefuseTooDeep(string path, string parentPath, Func<string, bool, IImageFile>? fileOpener)
    {
        int depth;
        try
        {
            using var chain = Open(parentPath, fileOpener is null ? OpenOptions.ReadOnly : OpenOptions.ReadOnly with { FileOpener = fileOpener });
            depth = chain.Layers.Count;
        }
        catch (DiskImageException e) when (e.Kind != ErrorKind.ChainInvalid)
        {
            return;
        }
        catch (DiskImageException e) when (e.Detail.Contains("deeper than"))
        {
            depth = ChainRules.MaxDepth;
        }
        if (depth >= ChainRules.MaxDepth)
            throw new DiskImageException(ErrorKind.ChainInvalid,
                $"the parent's chain is already {ChainRules.MaxDepth} images deep, the most dse opens; merge some layers first (dse merge)", path, "parent link");
    }

    /// <summary>
    /// Seals an image file (<c>dse seal</c>: as a golden image): no verb changes what it reads until it is unsealed. Only
    /// the mark is written: the content version stays, so children stay linked. Opens only this file, never its parents.
    /// </summary>
    /// <param name="path">The image.</param>
    /// <param name="reasons">Reasons added to the seal it has (the snapshot verbs add <see cref="SealReasons.Snapshot"/>).</param>
    /// <param name="fileOpener">Opens files (tests inject faults).</param>
    /// <returns>The seal the image had before.</returns>
    /// <exception cref="DiskImageException">Unsupported (raw and other formats without a seal mark, or no room for it), FileNotFound, Locked, Io.</exception>
    public static SealReasons Seal(string path, SealReasons reasons = SealReasons.Golden, Func<string, bool, IImageFile>? fileOpener = null) =>
        ChangeSeal(path, seal => seal | reasons, fileOpener);

    /// <summary>
    /// Lifts every seal of an image file (<c>dse unseal</c>): the user says that no other image reads through it any
    /// more, or accepts that they will read changed data. Only the mark is written; the content version stays.
    /// </summary>
    /// <returns>The seal the image had before.</returns>
    /// <exception cref="DiskImageException">Unsupported (a format without a seal mark), FileNotFound, Locked, Io.</exception>
    public static SealReasons Unseal(string path, Func<string, bool, IImageFile>? fileOpener = null) =>
        ChangeSeal(path, _ => SealReasons.None, fileOpener);

    private static SealReasons ChangeSeal(string path, Func<SealReasons, SealReasons> change, Func<string, bool, IImageFile>? fileOpener)
    {
        using var layer = OpenLayer(path, writable: true, fileOpener);
        if (layer is not ISealableLayer sealable)
            throw new DiskImageException(ErrorKind.Unsupported, Seals.NoMark(layer.Format), layer.Path);
        var was = sealable.Seal;
        sealable.SetSeal(change(was));
        layer.Flush();
        return was;
    }

    // beforeFormat runs once the file exists and before the format is written into it; if it fails, the file goes too.
    private static IDiskLayer CreateWith(IImageFormatDriver driver, string path, ImageCreateOptions options, ParentDescriptor? parent,
        Action? beforeFormat = null, uint mode = FileOwnership.NewFileMode, string? named = null)
    {
        if (options.VirtualSize <= 0)
            ThrowHelper.InvalidArgument($"virtual size must be positive (got {options.VirtualSize})", path);
        if (options.LogicalSectorSize is not (512 or 4096))
            ThrowHelper.InvalidArgument($"logical sector size must be 512 or 4096 (got {options.LogicalSectorSize})", path);
        if (options.VirtualSize % options.LogicalSectorSize != 0)
            ThrowHelper.InvalidArgument($"virtual size {options.VirtualSize} is not a multiple of the logical sector size {options.LogicalSectorSize}", path);
        var file = ImageFile.Create(path, mode, named);
        try
        {
            beforeFormat?.Invoke();
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
    public static IDiskLayer OpenLayer(string path, bool writable, Func<string, bool, IImageFile>? fileOpener = null) =>
        OpenLayer(path, writable, fileOpener, internalSnapshot: null);

    /// <summary>Opens one image file without its parents, as <paramref name="options"/> ask (writable, internal snapshot, file opener).</summary>
    /// <exception cref="DiskImageException">As <see cref="OpenLayer(string, bool, Func{string, bool, IImageFile}?)"/>; InvalidArgument, ReadOnly for an internal snapshot.</exception>
    public static IDiskLayer OpenLayer(string path, OpenOptions options) =>
        OpenLayer(path, options.Writable, options.FileOpener, options.InternalSnapshot);

    private static IDiskLayer OpenLayer(string path, bool writable, Func<string, bool, IImageFile>? fileOpener, string? internalSnapshot)
    {
        if (writable) RefuseWritableSnapshot(path, internalSnapshot);
        var file = (fileOpener ?? OpenOptions.ReadOnly.FileOpener)(path, writable);
        try
        {
            var driver = ImageFormats.Detect(file);
            if (internalSnapshot is null) return driver.Open(file, writable);
            if (driver is not IInternalSnapshotDriver snapshots)
                throw new DiskImageException(ErrorKind.InvalidArgument,
                    $"a {driver.Name} image has no internal snapshots (only qcow2 has); '{internalSnapshot}' names none", file.Path);
            return snapshots.OpenInternalSnapshot(file, internalSnapshot);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    // A snapshot shares its clusters with the current state and other snapshots: it is only ever read.
    private static void RefuseWritableSnapshot(string path, string? internalSnapshot)
    {
        if (internalSnapshot is not null)
            throw new DiskImageException(ErrorKind.ReadOnly, $"internal snapshot '{internalSnapshot}' opens read-only: it cannot be written",
                Path.GetFullPath(path)); // named as every other error names an image, whatever form the caller gave
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
            if (writableIndex >= 0) RefuseWritableSnapshot(path, options.InternalSnapshot);
            layers.Add(OpenLayer(path, writableIndex == 0, options.FileOpener, options.InternalSnapshot));
            // Named after the open: a snapshot command may rename a new file over the path until the open's lock is
            // taken, and the chain must know the file it opened (a stale one would make its parent look like a loop).
            nodes.Add(FileNode.Of(path));
            // Children found beside it are named first; the seal refuses the rest, wherever its children are.
            if (writableIndex == 0 && refuseWriteWithChildren) RefuseIfParent(layers[0], options);
            if (writableIndex == 0) Seals.Check(layers[0], options.Sealed, "write into it");
            while (layers[^1].ParentLink is not null)
            {
                if (layers.Count >= ChainRules.MaxDepth)
                    throw new DiskImageException(ErrorKind.ChainInvalid,
                        $"the parent chain is deeper than {ChainRules.MaxDepth} images", path, "parent link");
                var (parent, node) = ParentResolver.Open(layers[^1], options, nodes);
                if (layers.Count == writableIndex)
                {
                    // The seal is checked on the read-only open, before the exclusive lock is taken.
                    try { Seals.Check(parent, options.Sealed, "write into it"); }
                    catch { parent.Dispose(); throw; }
                    parent = ReopenWritable(parent, options);
                }
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
    // override, make it read different data). The override is write's --force alone: serve and mount, which refuse
    // the same way, have none, so the message names the one verb that has it.
    private static void RefuseIfParent(IDiskLayer layer, OpenOptions options)
    {
        var folders = new List<string> { Operations.Dependents.FolderOf(layer.Path) };
        folders.AddRange(options.SearchPaths.Where(Directory.Exists));
        var children = Operations.Dependents.ChildrenOf(layer, folders, options);
        if (children.Count > 0)
            throw new DiskImageException(ErrorKind.ReadOnly,
                $"the image has {children.Count} child image(s) that read through it ({string.Join(", ", children)}); writing would change what they read " +
                "(merge or delete them first, or write into a child instead; only 'dse write --force' writes it anyway)", layer.Path);
    }

    /// <summary>
    /// The bytes the file system allocated to the file at <paramref name="path"/> (what qemu-img calls "disk size":
    /// less than the file size for a sparse file); null where it cannot be told (Windows, a stat failure).
    /// </summary>
    public static long? AllocatedBytes(string path) => ImageFile.AllocatedBytes(path);
}
