using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;
using DiskSnapshotEngine.Operations;

namespace DiskSnapshotEngine.Snapshots;

/// <summary>
/// The snapshots of one disk. The disk's path always names the current state: a differencing child of the snapshot
/// it was started from. Each snapshot is a frozen layer file beside the disk, named <c>STEM.snap-ID.EXT</c>.
/// <para>Layout choice: the layers stay in the disk's own folder (not a sub-folder) so that every parent link keeps
/// resolving without extra search paths: a VDI child finds its parent by identity in its own folder, and a VHDX
/// child's relative path is a bare file name that stays valid when a layer changes name.</para>
/// <para>Create, revert and rollback are constant time: create gives the disk's file a second name (a hard link,
/// so the disk's path never goes missing), creates an empty child of it under a temporary name and renames that
/// over the disk's path. Every multi-step command first records its plan in the catalog; the next snapshot command
/// on the disk finishes an interrupted one.</para>
/// <para>The commands are here; delete, repair and the recovery of interrupted operations each have their own file.</para>
/// </summary>
public static partial class DiskSnapshots
{
    private const string NewSuffix = ".dse-new";

    /// <summary>Takes a snapshot of the disk's current state.</summary>
    /// <exception cref="DiskImageException">InvalidArgument (empty or duplicate name), Unsupported (raw disk), Locked, open and I/O errors.</exception>
    public static SnapshotEntry Create(string disk, string name, string? description = null, OpenOptions? options = null)
    {
        options ??= OpenOptions.ReadOnly;
        disk = Path.GetFullPath(disk);
        using var scope = LockDisk(disk);
        var catalog = FinishPending(disk, options);
        if (string.IsNullOrWhiteSpace(name)) ThrowHelper.InvalidArgument("a snapshot needs a name", disk);
        if (catalog.Snapshots.Any(s => s.Name == name))
            throw new DiskImageException(ErrorKind.AlreadyExists, $"a snapshot named '{name}' already exists", disk);
        string[] pathLinked;
        using (var layer = DiskImage.OpenLayer(disk, writable: false, options.FileOpener))
        {
            if (layer.Format == ImageFormat.Raw)
                throw new DiskImageException(ErrorKind.Unsupported, "a raw disk cannot have differencing children; convert it to VHDX or VDI first (dse clone)", disk);
            // The disk's file becomes the snapshot layer and a new child takes its path: linked clones anywhere that
            // name a golden disk by path would then read the new current state instead of the golden one. Refused
            // before anything changes, whatever folder those clones are in.
            if ((Seals.Of(layer) & SealReasons.Golden) != 0)
                throw new DiskImageException(ErrorKind.ReadOnly,
                    "cannot take a snapshot of it: the image is sealed as a golden image (linked clones may read through it by its path, " +
                    $"and a snapshot would move its file to the snapshot's name); take the snapshot of a linked clone instead, or {SealAdvice.For(disk, SealReasons.Golden)}", disk);
            RefuseUnsealable(layer, "take a snapshot", "the disk's file becomes the layer");
            // A child that names the disk by path (VHDX) would find the new empty current state there instead of the
            // content it was made from, so it is relinked to the snapshot layer (the same file under its new name).
            // A child that names the disk by identity (VDI) follows the file to its snapshot name by itself.
            pathLinked = Dependents.ChildrenOf(layer, new[] { Dependents.FolderOf(disk) }, options)
                .Where(c => { using var l = DiskImage.OpenLayer(c, false, options.FileOpener); return IsIntactPathLinkedChild(l, layer, disk); })
                .ToArray();
        }
        // Each of them will be rewritten: lock them now, before anything changes, and keep them until the create is
        // done, so that a VM starting on one meanwhile cannot leave the create half done.
        foreach (var child in pathLinked) scope.Lock(child);
        var id = Guid.NewGuid();
        var entry = new SnapshotEntry
        {
            Id = id,
            Name = name,
            Description = description,
            Created = DateTimeOffset.UtcNow,
            File = LayerFileName(disk, id),
            Parent = CurrentParent(disk, catalog, options),
        };
        ClearNewFile(disk);
        catalog = catalog with { Pending = new PendingSnapshotOperation { Operation = "create", Snapshot = entry, Children = pathLinked } };
        catalog.Save(disk);
        return FinishCreate(disk, catalog, entry, options);
    }

    /// <summary>
    /// Begins the lock scope of a snapshot command: the disk's file is locked (exclusive for a change, shared for a
    /// listing) before the catalog is read, and every file the command creates, renames or rewrites is added to the
    /// scope before it changes, so that another process sees the old chain, the new one, or exit 12.
    /// </summary>
    private static LockScope LockDisk(string disk, bool exclusive = true)
    {
        if (exclusive) RefuseLink(disk);
        // The verbs that change snapshots write beside the disk (layers, the catalog): a folder this user may not
        // write is named up front rather than by the temporary catalog file whose creation fails half-way.
        if (exclusive) FolderAccess.Require(disk, "change its snapshots", "the snapshot layers and the catalog are written beside the disk");
        var scope = LockScope.Begin();
        try
        {
            if (exclusive) scope.Lock(disk);
            else scope.LockIfExists(disk, exclusive: false);
            return scope;
        }
        catch
        {
            scope.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Refuses (InvalidArgument) a disk named through a symbolic link: a snapshot verb moves the disk's file to a layer
    /// and puts a new file at the disk's path, which would replace the link by a regular file beside it and leave the
    /// link's target as a layer; following the link instead would put the layers beside the target, where a child's
    /// relative parent path no longer resolves for QEMU, which reads it from the link's folder.
    /// </summary>
    private static void RefuseLink(string disk)
    {
        if (FileNode.LinkTargetOf(disk) is string target)
            ThrowHelper.InvalidArgument($"the disk is a symbolic link to {target}: a snapshot verb would replace the link by a new file; name the link's target instead", disk);
    }

    /// <summary>
    /// A child that names <paramref name="layer"/> by path (VHDX) and still reads the content it was made on: its
    /// recorded parent version is the layer's present one. A child whose parent changed since already fails its
    /// parent check; relinking it would make the new content look right to it, so it is left alone.
    /// <paramref name="disk"/> is the disk's path, which a child may still name while the layer has taken its place.
    /// </summary>
    private static bool IsIntactPathLinkedChild(IDiskLayer child, IDiskLayer layer, string disk) =>
        child.ParentLink is { ParentId: null } link
        && (link.ParentVersion is null || link.ParentVersion == layer.Identity.Version || link.AlternateParentVersion == layer.Identity.Version)
        && (Dependents.LinksTo(child, layer) || (link.CandidatePaths.Count > 0 && link.CandidatePaths[0] == disk));

    private static SnapshotEntry FinishCreate(string disk, SnapshotCatalog catalog, SnapshotEntry entry, OpenOptions options)
    {
        string layerPath = PathOf(disk, entry);
        bool haveLayer = File.Exists(layerPath);
        bool diskIsLayer = haveLayer && File.Exists(disk) && FileNode.Of(disk).SameFileAs(FileNode.Of(layerPath));
        if (!haveLayer)
        {
            // The disk's file gets a second name: the disk's path stays valid, the identity is unchanged.
            DurableFiles.LinkOrRename(disk, layerPath);
            diskIsLayer = true;
        }
        if (diskIsLayer || !File.Exists(disk))
        {
            // Path-linked children move to the layer's name first: until the disk's path is replaced both names are
            // the same file, so a crash anywhere here leaves every child opening its own content. Rewriting the
            // locator is idempotent, so a resumed create simply does it again.
            using var layer = DiskImage.OpenLayer(layerPath, writable: false, options.FileOpener);
            foreach (var child in catalog.Pending?.Children ?? Array.Empty<string>())
                RelinkToLayer(child, layer, disk, options);
        }
        if (diskIsLayer || !File.Exists(disk))
            ReplaceWithChildOf(disk, layerPath, options);
        var done = catalog with
        {
            Snapshots = catalog.Snapshots.Append(entry).ToList(),
            Current = entry.Id,
            Pending = null,
        };
        done.Save(disk);
        return entry;
    }

    // A resumed create trusts nothing recorded: the file may have been removed, replaced or relinked meanwhile, and
    // only a child that still names the disk (or the layer) with the layer's version is rewritten.
    private static void RelinkToLayer(string child, IDiskLayer layer, string disk, OpenOptions options)
    {
        if (!File.Exists(child)) return;
        try { LockScope.Current!.Lock(child); }
        catch (DiskImageException e) when (e.Kind == ErrorKind.Locked)
        {
            throw new DiskImageException(ErrorKind.Locked,
                $"a snapshot create is pending and must relink {child}, which another process has open; close it and run the snapshot command again",
                disk, inner: e);
        }
        catch (DiskImageException e) when (e.Kind == ErrorKind.FileNotFound)
        {
            return;
        }
        IDiskLayer c;
        try { c = DiskImage.OpenLayer(child, writable: true, options.FileOpener); }
        catch (DiskImageException) { return; }
        using (c)
        {
            if (!IsIntactPathLinkedChild(c, layer, disk)) return;
            c.SetParent(ParentDescriptor.Of(layer));
            c.Flush();
        }
    }

    /// <summary>Lists the snapshots as a tree (depth-first, oldest first).</summary>
    public static IReadOnlyList<SnapshotInfo> List(string disk, OpenOptions? options = null)
    {
        disk = Path.GetFullPath(disk);
        using var scope = LockDisk(disk, exclusive: false);
        var catalog = SnapshotCatalog.Load(disk);
        var result = new List<SnapshotInfo>();
        var byParent = catalog.Snapshots.ToLookup(s => s.Parent);
        var ids = catalog.Snapshots.Select(s => s.Id).ToHashSet();
        void Visit(SnapshotEntry e, int depth)
        {
            string p = PathOf(disk, e);
            result.Add(new SnapshotInfo(e, p, File.Exists(p) ? new FileInfo(p).Length : -1, catalog.Current == e.Id, depth));
            foreach (var c in byParent[e.Id].OrderBy(s => s.Created)) Visit(c, depth + 1);
        }
        foreach (var root in catalog.Snapshots.Where(s => s.Parent is not Guid g || !ids.Contains(g)).OrderBy(s => s.Created))
            Visit(root, 0);
        return result;
    }

    /// <summary>The catalog as stored (for <c>--json</c>).</summary>
    public static SnapshotCatalog Catalog(string disk)
    {
        disk = Path.GetFullPath(disk);
        using var scope = LockDisk(disk, exclusive: false);
        return SnapshotCatalog.Load(disk);
    }

    /// <summary>Discards the current state and starts a new empty one on snapshot <paramref name="name"/>. Every snapshot is kept.</summary>
    /// <exception cref="DiskImageException">InvalidArgument (unknown name), ReadOnly (other images depend on the current state), open and I/O errors.</exception>
    public static void Revert(string disk, string name, OpenOptions? options = null)
    {
        options ??= OpenOptions.ReadOnly;
        disk = Path.GetFullPath(disk);
        using var scope = LockDisk(disk);
        var catalog = FinishPending(disk, options);
        var entry = catalog.Find(name, disk);
        RefuseDependents(disk, catalog, options);
        if (File.Exists(PathOf(disk, entry)))
        {
            using var layer = DiskImage.OpenLayer(PathOf(disk, entry), false, options.FileOpener);
            RefuseUnsealable(layer, $"revert to snapshot '{name}'", "the new current state reads through it");
        }
        ClearNewFile(disk);
        catalog = catalog with { Pending = new PendingSnapshotOperation { Operation = "revert", Snapshot = entry } };
        catalog.Save(disk);
        FinishRevert(disk, catalog, entry, options);
    }

    private static void FinishRevert(string disk, SnapshotCatalog catalog, SnapshotEntry entry, OpenOptions options)
    {
        string layerPath = PathOf(disk, entry);
        if (!File.Exists(layerPath))
            throw new DiskImageException(ErrorKind.FileNotFound, $"the layer of snapshot '{entry.Name}' is missing; run 'dse snapshot repair'", layerPath);
        // When the disk already is a fresh child of the snapshot (the interrupted run got that far), keep it.
        if (!IsEmptyChildOf(disk, layerPath, options)) ReplaceWithChildOf(disk, layerPath, options);
        (catalog with { Current = entry.Id, Pending = null }).Save(disk);
    }

    /// <summary>Reverts to the newest snapshot the current state descends from.</summary>
    /// <returns>The snapshot reverted to.</returns>
    /// <exception cref="DiskImageException">InvalidArgument when the current state descends from no snapshot.</exception>
    public static SnapshotEntry Rollback(string disk, OpenOptions? options = null)
    {
        options ??= OpenOptions.ReadOnly;
        disk = Path.GetFullPath(disk);
        using var scope = LockDisk(disk);
        var catalog = FinishPending(disk, options);
        var current = CurrentParent(disk, catalog, options) is Guid id ? catalog.Snapshots.First(s => s.Id == id) : null;
        if (current is null) ThrowHelper.InvalidArgument("the current state descends from no snapshot: nothing to roll back to", disk);
        Revert(disk, current!.Name, options);
        return current;
    }

    /// <summary>The snapshot whose layer the disk's file links to (the structure is the truth; the catalog follows).</summary>
    private static Guid? CurrentParent(string disk, SnapshotCatalog catalog, OpenOptions options)
    {
        if (catalog.Snapshots.Count == 0) return null;
        // The catalog records which snapshot the current state was started from. A pull or rebase may since have
        // relinked the disk past that snapshot's layer (it copied the layer's data in), so the chain's direct parent
        // is not the answer then; the link is only the fallback for a catalog without that record (after repair).
        if (catalog.Current is Guid recorded && catalog.Snapshots.Any(s => s.Id == recorded)) return recorded;
        using var d = DiskImage.OpenLayer(disk, false, options.FileOpener);
        if (d.ParentLink is null) return null;
        foreach (var s in catalog.Snapshots)
        {
            string p = PathOf(disk, s);
            if (!File.Exists(p)) continue;
            using var l = DiskImage.OpenLayer(p, false, options.FileOpener);
            if (Dependents.LinksTo(d, l)) return s.Id;
        }
        return catalog.Current;
    }

    private static void RefuseDependents(string disk, SnapshotCatalog catalog, OpenOptions options)
    {
        using var d = DiskImage.OpenLayer(disk, false, options.FileOpener);
        Seals.Check(d, SealPolicy.SnapshotLayers, "discard the current state");
        var children = Dependents.ChildrenOf(d, new[] { Dependents.FolderOf(disk) }, options);
        if (children.Count > 0)
            throw new DiskImageException(ErrorKind.ReadOnly,
                $"cannot discard the current state: other images depend on it: {string.Join("; ", children)}", disk);
    }

    // A snapshot layer is sealed as it gets its child (below). Unlike a golden image (read-only by intent, its clones new
    // files of their own), a layer this process cannot write is not taken unsealed: the disk's file becomes that layer
    // and the new current state keeps the disk's mode, so it could not be written either, nor the snapshot deleted
    // (deleting merges layers). On revert: the new current state reads through the snapshot's layer, which must then be
    // sealed, and an unwritable layer could not be merged when a snapshot is deleted either. Refused before anything
    // changes; root, whom a mode does not stop, seals it.
    private static void RefuseUnsealable(IDiskLayer layer, string action, string becauseLayer)
    {
        if (layer is not ISealableLayer || (Seals.Of(layer) & SealReasons.Snapshot) != 0) return;
        if (Seals.WhyNotWritable(layer.Path) is { } why)
            throw new DiskImageException(ErrorKind.ReadOnly,
                $"cannot {action}: {why}, and a snapshot layer must be sealed ({becauseLayer}); " +
                "make the file writable for this user first", layer.Path);
    }

    // The new current state is made as DISK.dse-new: a stale one (a crashed run's) is removed under the disk's lock, and
    // one this user may not remove (another user's, in a sticky folder) is refused now, naming the disk, before the
    // catalog records the operation, rather than half-way through it.
    private static void ClearNewFile(string disk)
    {
        DurableFiles.TryDelete(disk + NewSuffix);
        LockedOpen.CheckCreatable(disk + NewSuffix, disk);
    }

    // Creates an empty child of the layer under a temporary name, then renames it over the disk's path in one step.
    private static void ReplaceWithChildOf(string disk, string layerPath, OpenOptions options)
    {
        string temp = disk + NewSuffix;
        DurableFiles.TryDelete(temp);
        ImageFormat format;
        using (var l = DiskImage.OpenLayer(layerPath, false, options.FileOpener)) format = l.Format;
        // The layer is sealed as a snapshot layer as its child is made (a resumed create too): only the snapshot verbs change it.
        using (var child = DiskImage.CreateDifferencing(temp, layerPath, format, options.FileOpener, SealReasons.Snapshot, named: disk)) child.Flush();
        DurableFiles.Rename(temp, disk, overwrite: true);
    }

    private static bool IsEmptyChildOf(string disk, string layerPath, OpenOptions options)
    {
        if (!File.Exists(disk)) return false;
        using var d = DiskImage.OpenLayer(disk, false, options.FileOpener);
        using var l = DiskImage.OpenLayer(layerPath, false, options.FileOpener);
        // A child resized apart from the layer does not read as the layer, even empty.
        if (!Dependents.LinksTo(d, l) || d.VirtualSize != l.VirtualSize) return false;
        for (long off = 0; off < d.VirtualSize;)
        {
            var e = d.GetStatus(off, d.VirtualSize - off);
            if (e.Kind != ExtentKind.NotPresent) return false;
            off = e.End;
        }
        return true;
    }

    private static string LayerFileName(string disk, Guid id) =>
        Path.GetFileNameWithoutExtension(disk) + ".snap-" + id.ToString("N") + Path.GetExtension(disk);

    /// <summary>Full path of a snapshot's layer file.</summary>
    public static string PathOf(string disk, SnapshotEntry entry) => Path.Combine(Dependents.FolderOf(disk), entry.File);
}
