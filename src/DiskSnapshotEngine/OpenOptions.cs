using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine;

/// <summary>A place to look for a parent by its identity, such as a VirtualBox media registry (supplied from outside the core).</summary>
public interface IParentLocationSource
{
    /// <summary>Human-readable name for error messages ("VirtualBox registry /x/VirtualBox.xml").</summary>
    string Description { get; }

    /// <summary>Paths the source associates with the image identity <paramref name="parentId"/>.</summary>
    IEnumerable<string> FindCandidates(Guid parentId);
}

/// <summary>How to open an image and its parents.</summary>
public sealed record OpenOptions
{
    /// <summary>Open the top image for writing (parents are always read-only, shared-locked).</summary>
    public bool Writable { get; init; }

    /// <summary>Extra folders (or files) to search for parents that are found by identity (VDI).</summary>
    public IReadOnlyList<string> SearchPaths { get; init; } = Array.Empty<string>();

    /// <summary>Extra sources of parent locations (a VirtualBox media registry).</summary>
    public IReadOnlyList<IParentLocationSource> LocationSources { get; init; } = Array.Empty<IParentLocationSource>();

    /// <summary>
    /// Refuse a writable open of an image that has children (differencing images beside it, or in the search paths,
    /// whose parent link names it): writing would change what they read. Off by default because merge, rebase and the
    /// snapshot operations write such layers on purpose while keeping every reader's view; user-facing writes turn it on.
    /// </summary>
    public bool RefuseWriteWithChildren { get; init; }

    /// <summary>
    /// Which sealed images a writable open accepts (<see cref="Block.SealPolicy"/>): by default none, so no verb changes
    /// a golden image or a snapshot layer; the snapshot verbs pass <see cref="Block.SealPolicy.SnapshotLayers"/> for their
    /// own layers, <c>--force</c> passes <see cref="Block.SealPolicy.Override"/>.
    /// </summary>
    public Block.SealPolicy Sealed { get; init; }

    /// <summary>Expert override: accept a parent whose content version differs from what the child recorded.</summary>
    public bool IgnoreParentMismatch { get; init; }

    /// <summary>
    /// Read without locks, like qemu-img's -U (force share): the images are read even while another process (dse,
    /// QEMU) writes them, and that content may be inconsistent. Only for read-only opens; a writable open ignores it.
    /// </summary>
    public bool ForceShare { get; init; }

    /// <summary>
    /// Read the top image as it was at this internal snapshot (qcow2; its id, or else its name, as qemu-img -s matches),
    /// read-only: a writable open with it is refused (ReadOnly). Parents are read as they are. Null: the current state.
    /// </summary>
    public string? InternalSnapshot { get; init; }

    private readonly Func<string, bool, IImageFile>? _fileOpener;

    /// <summary>Opens files; tests replace it to inject faults. Arguments: path, writable. The default honours <see cref="ForceShare"/>.</summary>
    public Func<string, bool, IImageFile> FileOpener
    {
        get => _fileOpener ?? OpenFile;
        init => _fileOpener = value;
    }

    private ImageFile OpenFile(string path, bool writable) =>
        ImageFile.Open(path, writable ? FileLockMode.Exclusive : ForceShare ? FileLockMode.ForceShare : FileLockMode.Shared);

    /// <summary>Read-only defaults.</summary>
    public static OpenOptions ReadOnly { get; } = new();

    /// <summary>Writable defaults.</summary>
    public static OpenOptions ReadWrite { get; } = new() { Writable = true };
}
