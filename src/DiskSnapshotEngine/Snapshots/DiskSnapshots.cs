using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;
using DiskSnapshotEngine.Operations;

namespace DiskSnapshotEngine.Snapshots;

/// <summary>A snapshot as listed: the catalog entry plus facts read from its layer.</summary>
/// <param name="Entry">The catalog entry.</param>
/// <param name="Path">Full path of the layer file.</param>
/// <param name="FileSize">Size of the layer file in bytes (-1 when it is missing).</param>
/// <param name="IsCurrent">True when the current state was started from this snapshot.</param>
/// <param name="Depth">Depth in the tree (0 for a root), for display.</param>
public sealed record SnapshotInfo(SnapshotEntry Entry, string Path, long FileSize, bool IsCurrent, int Depth);

/// <summary>Result of a repair.</summary>
/// <param name="Catalog">The rebuilt catalog (already saved).</param>
/// <param name="Problems">What was found wrong and not fixable here (an image whose parent cannot be opened).</param>
public sealed record RepairResult(SnapshotCatalog Catalog, IReadOnlyList<CheckProblem> Problems)
{
    /// <summary>True when some image or chain does not open: the catalog was rebuilt, but not everything is readable.</summary>
    public bool HasErrors => Problems.Any(p => p.Severity == CheckSeverity.Error);
}

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
/// </summary>
public static class DiskSnapshots
{
    private const string NewSuffix = ".dse-new";

    /// <summary>Takes a snapshot of the disk's current state.</summary>
    /// <exception cref="DiskImageException">InvalidArgument (empty or duplicate name), Unsupported (raw disk), Locked, open and I/O errors.</exception>
    public static SnapshotEntry Create(string disk, string name, string? description = null, OpenOptions? options = null)
    {
        options ??= OpenOptions.ReadOnly;
        disk = Path.GetFullPath(disk);
        var catalog = FinishPending(disk, options);
        if (string.IsNullOrWhiteSpace(name)) ThrowHelper.InvalidArgument("a snapshot needs a name", disk);
        if (catalog.Snapshots.Any(s => s.Name == name))
            throw new DiskImageException(ErrorKind.AlreadyExists, $"a snapshot named '{name}' already exists", disk);
        string[] pathLinked;
        var held = new Dictionary<string, IDiskLayer>(StringComparer.Ordinal);
        try
        {
            using (var layer = DiskImage.OpenLayer(disk, writable: false, options.FileOpener))
            {
                if (layer.Format == ImageFormat.Raw)
                    throw new DiskImageException(ErrorKind.Unsupported, "a raw disk cannot have differencing children; convert it to VHDX or VDI first (dse clone)", disk);
                // A child that names the disk by path (VHDX) would find the new empty current state there instead of the
                // content it was made from, so it is relinked to the snapshot layer (the same file under its new name).
                // A child that names the disk by identity (VDI) follows the file to its snapshot name by itself.
                pathLinked = Dependents.ChildrenOf(layer, new[] { Dependents.FolderOf(disk) }, options.FileOpener)
                    .Where(c => { using var l = DiskImage.OpenLayer(c, false, options.FileOpener); return IsIntactPathLinkedChild(l, layer, disk); })
                    .ToArray();
            }
            // Each of them will be rewritten: take them now, before anything changes, and keep them until they are
            // relinked, so that a VM starting on one meanwhile cannot leave the create half done.
            foreach (var child in pathLinked)
                held[child] = DiskImage.OpenLayer(child, writable: true, options.FileOpener);
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
            catalog = catalog with { Pending = new PendingSnapshotOperation { Operation = "create", Snapshot = entry, Children = pathLinked } };
            catalog.Save(disk);
            return FinishCreate(disk, catalog, entry, options, held);
        }
        finally
        {
            foreach (var c in held.Values) c.Dispose();
        }
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

    private static SnapshotEntry FinishCreate(string disk, SnapshotCatalog catalog, SnapshotEntry entry, OpenOptions options,
        IReadOnlyDictionary<string, IDiskLayer>? held = null)
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
                RelinkToLayer(child, layer, disk, options, held?.GetValueOrDefault(child));
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
    private static void RelinkToLayer(string child, IDiskLayer layer, string disk, OpenOptions options, IDiskLayer? held)
    {
        IDiskLayer? opened = null;
        try
        {
            var c = held;
            if (c is null)
            {
                if (!File.Exists(child)) return;
                try { c = opened = DiskImage.OpenLayer(child, writable: true, options.FileOpener); }
                catch (DiskImageException e) when (e.Kind == ErrorKind.Locked)
                {
                    throw new DiskImageException(ErrorKind.Locked,
                        $"a snapshot create is pending and must relink {child}, which another process has open; close it and run the snapshot command again",
                        disk, inner: e);
                }
                catch (DiskImageException) { return; }
            }
            if (!IsIntactPathLinkedChild(c, layer, disk)) return;
            c.SetParent(ParentDescriptor.Of(layer));
            c.Flush();
        }
        finally
        {
            opened?.Dispose();
        }
    }

    /// <summary>Lists the snapshots as a tree (depth-first, oldest first).</summary>
    public static IReadOnlyList<SnapshotInfo> List(string disk, OpenOptions? options = null)
    {
        disk = Path.GetFullPath(disk);
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
    public static SnapshotCatalog Catalog(string disk) => SnapshotCatalog.Load(Path.GetFullPath(disk));

    /// <summary>Discards the current state and starts a new empty one on snapshot <paramref name="name"/>. Every snapshot is kept.</summary>
    /// <exception cref="DiskImageException">InvalidArgument (unknown name), ReadOnly (other images depend on the current state), open and I/O errors.</exception>
    public static void Revert(string disk, string name, OpenOptions? options = null)
    {
        options ??= OpenOptions.ReadOnly;
        disk = Path.GetFullPath(disk);
        var catalog = FinishPending(disk, options);
        var entry = catalog.Find(name, disk);
        RefuseDependents(disk, catalog, options);
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
        var catalog = FinishPending(disk, options);
        var current = CurrentParent(disk, catalog, options) is Guid id ? catalog.Snapshots.First(s => s.Id == id) : null;
        if (current is null) ThrowHelper.InvalidArgument("the current state descends from no snapshot: nothing to roll back to", disk);
        Revert(disk, current!.Name, options);
        return current;
    }

    /// <summary>
    /// Deletes snapshot <paramref name="name"/>: the name goes, and its layer is merged with its neighbours so that
    /// every remaining snapshot and the current state read exactly as before. A layer with a parent is pulled into
    /// each of its children (which are then linked to its parent); a base layer with one child receives that child's
    /// data (commit); a base layer with several children is refused.
    /// </summary>
    /// <exception cref="DiskImageException">InvalidArgument (unknown name), ReadOnly (images outside the snapshot tree depend on the layer, or a base layer has several children), DiskFull, open and I/O errors.</exception>
    public static async Task DeleteAsync(string disk, string name, OpenOptions? options = null,
        IProgress<OperationProgress>? progress = null, CancellationToken cancel = default)
    {
        options ??= OpenOptions.ReadOnly;
        disk = Path.GetFullPath(disk);
        var stored = SnapshotCatalog.Load(disk);
        bool rerun = stored.Pending is { Operation: "delete" } p && p.Snapshot.Name == name;
        var catalog = await FinishPendingAsync(disk, options, progress, cancel).ConfigureAwait(false);
        // Running the same delete again after an interruption finishes it: that is all there is to do.
        if (rerun) return;
        var entry = catalog.Find(name, disk);
        string layerPath = PathOf(disk, entry);
        string plan;
        List<string> children;
        using (var layer = DiskImage.OpenLayer(layerPath, writable: false, options.FileOpener))
        {
            children = Dependents.ChildrenOf(layer, new[] { Dependents.FolderOf(disk) }, options.FileOpener);
            var known = catalog.Snapshots.Select(s => Path.GetFullPath(PathOf(disk, s))).Append(disk).ToHashSet(StringComparer.Ordinal);
            var strangers = children.Where(c => !known.Contains(c)).ToList();
            if (strangers.Count > 0)
                throw new DiskImageException(ErrorKind.ReadOnly,
                    $"cannot delete snapshot '{name}': images outside the snapshot tree depend on its layer: {string.Join("; ", strangers)}", disk);
            if (children.Count == 0) plan = "remove";
            else if (layer.ParentLink is not null) plan = "pull";
            else if (children.Count == 1) plan = "commit";
            else
                throw new DiskImageException(ErrorKind.ReadOnly,
                    $"cannot delete snapshot '{name}': it is the base of the disk and {children.Count} branches start from it ({string.Join("; ", children.Select(Path.GetFileName))}); " +
                    "delete all but one branch first", disk);
        }
        catalog = catalog with { Pending = new PendingSnapshotOperation { Operation = "delete", Snapshot = entry, Plan = plan, Children = children.ToArray() } };
        catalog.Save(disk);
        await FinishDeleteAsync(disk, catalog, options, progress, cancel).ConfigureAwait(false);
    }

    private static async Task FinishDeleteAsync(string disk, SnapshotCatalog catalog, OpenOptions options,
        IProgress<OperationProgress>? progress, CancellationToken cancel)
    {
        var pending = catalog.Pending!;
        var entry = pending.Snapshot;
        string layerPath = PathOf(disk, entry);
        var mergeOptions = new MergeOptions { Open = options };
        string? commitChild = null;
        switch (pending.Plan)
        {
            case "pull":
                foreach (var child in pending.Children)
                {
                    if (!File.Exists(layerPath)) break;
                    if (!File.Exists(child)) continue;
                    bool stillLinked;
                    using (var l = DiskImage.OpenLayer(layerPath, false, options.FileOpener))
                    using (var c = DiskImage.OpenLayer(child, false, options.FileOpener))
                        stillLinked = Dependents.LinksTo(c, l);
                    // A child already linked past the layer (or with a journal of its pull) is done or resumes itself.
                    if (stillLinked || File.Exists(OperationJournal.PathFor(child)))
                        await Merge.PullAsync(child, mergeOptions, progress, cancel).ConfigureAwait(false);
                }
                DurableFiles.Delete(layerPath);
                break;
            case "commit":
                commitChild = pending.Children[0];
                if (File.Exists(OperationJournal.PathFor(commitChild)) || File.Exists(layerPath))
                {
                    bool isDisk = string.Equals(Path.GetFullPath(commitChild), disk, StringComparison.Ordinal);
                    var publish = isDisk ? MergePublish.ReplaceImage : MergePublish.RemoveImage;
                    await Merge.CommitAsync(commitChild, layerPath, mergeOptions with { Publish = publish }, progress, cancel).ConfigureAwait(false);
                }
                break;
            default:
                DurableFiles.Delete(layerPath);
                break;
        }

        var remaining = catalog.Snapshots.Where(s => s.Id != entry.Id).Select(s =>
        {
            var e = s.Parent == entry.Id ? s with { Parent = entry.Parent } : s;
            // After a commit the base file holds the child snapshot's state: that snapshot now names the base file.
            if (commitChild is not null && string.Equals(PathOf(disk, s), commitChild, StringComparison.Ordinal))
                e = e with { File = entry.File };
            return e;
        }).ToList();
        Guid? current = catalog.Current == entry.Id ? entry.Parent : catalog.Current;
        (catalog with { Snapshots = remaining, Current = current, Pending = null }).Save(disk);
    }

    /// <summary>
    /// Rebuilds the catalog from the images alone: every <c>STEM.snap-*.EXT</c> beside the disk is a snapshot, the
    /// tree follows the parent links, names and descriptions are kept from the old catalog where it is readable, and
    /// every image's whole chain is opened to verify that it links its parent.
    /// </summary>
    public static RepairResult Repair(string disk, OpenOptions? options = null)
    {
        options ??= OpenOptions.ReadOnly;
        disk = Path.GetFullPath(disk);
        SnapshotCatalog? old = null;
        var problems = new CheckReport();
        string catalogPath = SnapshotCatalog.PathFor(disk);
        try { old = SnapshotCatalog.Load(disk); }
        catch (DiskImageException e) { problems.Add(CheckSeverity.Warning, catalogPath, "catalog", null, $"unreadable, names are lost: {e.Detail}"); }
        if (old?.Pending is { } p)
        {
            // A create or revert is finished rather than dropped: a create stopped after the disk got its snapshot name
            // would otherwise leave that "snapshot" being the live disk itself. A delete moves data, so it is left to
            // 'dse snapshot delete'.
            string what = $"an interrupted '{p.Operation}' of '{p.Snapshot.Name}'";
            if (p.Operation is "create" or "revert")
            {
                try
                {
                    old = FinishSimple(disk, old, options);
                    problems.Add(CheckSeverity.Warning, catalogPath, "pending operation", null, $"{what} was finished");
                }
                catch (DiskImageException e)
                {
                    problems.Add(CheckSeverity.Warning, catalogPath, "pending operation", null, $"{what} could not be finished ({e.Detail}) and was dropped");
                }
            }
            else
                problems.Add(CheckSeverity.Warning, catalogPath, "pending operation", null,
                    $"{what} was dropped; the images are consistent at every step of it");
        }
        DurableFiles.TryDelete(disk + NewSuffix);

        string folder = Dependents.FolderOf(disk);
        string prefix = Path.GetFileNameWithoutExtension(disk) + ".snap-";
        string ext = Path.GetExtension(disk);
        var files = Directory.EnumerateFiles(folder)
            .Where(f => Path.GetFileName(f).StartsWith(prefix, StringComparison.Ordinal) && Path.GetExtension(f) == ext)
            .Order(StringComparer.Ordinal).ToList();
        if (File.Exists(disk))
        {
            var diskNode = FileNode.Of(disk);
            foreach (var f in files.Where(f => FileNode.IsRegularFile(f) && FileNode.Of(f).SameFileAs(diskNode)).ToList())
            {
                // A snapshot must be frozen; a second name of the live disk is not one (a create stopped half-way).
                problems.Add(CheckSeverity.Error, f, "snapshot layer", null,
                    $"is the disk itself ({disk}), not a frozen snapshot; take the snapshot again with 'dse snapshot create'");
                files.Remove(f);
            }
        }
        var layers = new Dictionary<string, IDiskLayer>(StringComparer.Ordinal);
        try
        {
            foreach (var f in files)
            {
                try { layers[f] = DiskImage.OpenLayer(f, false, options.FileOpener); }
                catch (DiskImageException e) { problems.Add(CheckSeverity.Error, f, "image", null, $"cannot be opened: {e.Detail}"); }
            }
            var entries = new List<SnapshotEntry>();
            foreach (var (f, layer) in layers)
            {
                string fileName = Path.GetFileName(f);
                var known = old?.Snapshots.FirstOrDefault(s => s.File == fileName);
                Guid id = known?.Id ?? IdFromFileName(fileName, prefix) ?? Guid.NewGuid();
                entries.Add(known ?? new SnapshotEntry
                {
                    Id = id,
                    Name = "recovered-" + id.ToString("N")[..12],
                    Created = new DateTimeOffset(File.GetLastWriteTimeUtc(f), TimeSpan.Zero),
                    File = fileName,
                });
            }
            Guid? ParentOf(IDiskLayer layer)
            {
                foreach (var (f, candidate) in layers)
                    if (!ReferenceEquals(candidate, layer) && Dependents.LinksTo(layer, candidate))
                        return entries.First(e => e.File == Path.GetFileName(f)).Id;
                return null;
            }
            entries = entries.Select(e => e with { Parent = ParentOf(layers[Path.Combine(folder, e.File)]) }).ToList();
            Guid? current = null;
            using (var d = DiskImage.OpenLayer(disk, false, options.FileOpener))
                foreach (var (f, candidate) in layers)
                    if (Dependents.LinksTo(d, candidate)) current = entries.First(e => e.File == Path.GetFileName(f)).Id;

            foreach (var f in layers.Keys.Append(disk))
            {
                try { using var chain = DiskImage.Open(f, options with { Writable = false }); }
                catch (DiskImageException e) { problems.Add(CheckSeverity.Error, f, "chain", null, $"does not open: {e.Message}"); }
            }
            var catalog = new SnapshotCatalog { Disk = Path.GetFileName(disk), Snapshots = entries.OrderBy(e => e.Created).ToList(), Current = current };
            catalog.Save(disk);
            return new RepairResult(catalog, problems.Problems);
        }
        finally
        {
            foreach (var l in layers.Values) l.Dispose();
        }
    }

    private static Guid? IdFromFileName(string fileName, string prefix)
    {
        string core = Path.GetFileNameWithoutExtension(fileName)[(prefix.Length)..];
        return Guid.TryParseExact(core, "N", out var g) ? g : null;
    }

    // ---- helpers ----

    private static SnapshotCatalog FinishPending(string disk, OpenOptions options)
    {
        var catalog = SnapshotCatalog.Load(disk);
        if (catalog.Pending is null) return catalog;
        if (catalog.Pending.Operation == "delete")
        {
            // Finishing a delete moves data; only DeleteAsync (and the async path below) may do that.
            throw new DiskImageException(ErrorKind.InvalidArgument,
                $"an interrupted delete of snapshot '{catalog.Pending.Snapshot.Name}' must be finished first: run 'dse snapshot delete' with that name again", disk);
        }
        return FinishSimple(disk, catalog, options);
    }

    private static async Task<SnapshotCatalog> FinishPendingAsync(string disk, OpenOptions options, IProgress<OperationProgress>? progress, CancellationToken cancel)
    {
        var catalog = SnapshotCatalog.Load(disk);
        if (catalog.Pending is null) return catalog;
        if (catalog.Pending.Operation == "delete")
        {
            await FinishDeleteAsync(disk, catalog, options, progress, cancel).ConfigureAwait(false);
            return SnapshotCatalog.Load(disk);
        }
        return FinishSimple(disk, catalog, options);
    }

    private static SnapshotCatalog FinishSimple(string disk, SnapshotCatalog catalog, OpenOptions options)
    {
        var pending = catalog.Pending!;
        if (pending.Operation == "create") FinishCreate(disk, catalog, pending.Snapshot, options);
        else if (pending.Operation == "revert") FinishRevert(disk, catalog, pending.Snapshot, options);
        return SnapshotCatalog.Load(disk);
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
        var children = Dependents.ChildrenOf(d, new[] { Dependents.FolderOf(disk) }, options.FileOpener);
        if (children.Count > 0)
            throw new DiskImageException(ErrorKind.ReadOnly,
                $"cannot discard the current state: other images depend on it: {string.Join("; ", children)}", disk);
    }

    // Creates an empty child of the layer under a temporary name, then renames it over the disk's path in one step.
    private static void ReplaceWithChildOf(string disk, string layerPath, OpenOptions options)
    {
        string temp = disk + NewSuffix;
        DurableFiles.TryDelete(temp);
        ImageFormat format;
        using (var l = DiskImage.OpenLayer(layerPath, false, options.FileOpener)) format = l.Format;
        using (var child = DiskImage.CreateDifferencing(temp, layerPath, format, options.FileOpener)) child.Flush();
        DurableFiles.Rename(temp, disk, overwrite: true);
    }

    private static bool IsEmptyChildOf(string disk, string layerPath, OpenOptions options)
    {
        if (!File.Exists(disk)) return false;
        using var d = DiskImage.OpenLayer(disk, false, options.FileOpener);
        using var l = DiskImage.OpenLayer(layerPath, false, options.FileOpener);
        if (!Dependents.LinksTo(d, l)) return false;
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
