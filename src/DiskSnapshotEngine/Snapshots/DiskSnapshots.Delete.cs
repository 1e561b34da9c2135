using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;
using DiskSnapshotEngine.Operations;

namespace DiskSnapshotEngine.Snapshots;

// Delete: plans how a snapshot's layer goes (remove, pull into its children, or commit its only child into it) and runs the plan.
public static partial class DiskSnapshots
{
    /// <summary>
    /// Deletes snapshot <paramref name="name"/>: the name goes, and its layer is merged with its neighbours so that
    /// every remaining snapshot and the current state read exactly as before. A layer with a parent is pulled into
    /// each of its children (which are then linked to its parent); a base layer with one child receives that child's
    /// data (commit); a base layer with several children is refused.
    /// </summary>
    /// <returns>The symbolic links to merged layers that were removed or left (a left one may lead nowhere now).</returns>
    /// <exception cref="DiskImageException">InvalidArgument (unknown name), ReadOnly (images outside the snapshot tree depend on the layer, or a base layer has several children), DiskFull, open and I/O errors.</exception>
    public static async Task<SnapshotDeleteResult> DeleteAsync(string disk, string name, OpenOptions? options = null,
        IProgress<OperationProgress>? progress = null, CancellationToken cancel = default)
    {
        options ??= OpenOptions.ReadOnly;
        disk = Path.GetFullPath(disk);
        using var scope = LockDisk(disk);
        var stored = SnapshotCatalog.Load(disk);
        bool rerun = stored.Pending is { Operation: "delete" } p && p.Snapshot.Name == name;
        var (catalog, finished) = await FinishPendingAsync(disk, options, progress, cancel).ConfigureAwait(false);
        // Running the same delete again after an interruption finishes it: that is all there is to do.
        if (rerun) return finished;
        var entry = catalog.Find(name, disk);
        string layerPath = PathOf(disk, entry);
        string plan;
        List<string> children;
        using (var layer = DiskImage.OpenLayer(layerPath, writable: false, options.FileOpener))
        {
            Seals.Check(layer, SealPolicy.SnapshotLayers, $"delete snapshot '{name}'");
            children = Dependents.ChildrenOf(layer, new[] { Dependents.FolderOf(disk) }, options);
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
        // A pull rewrites each child and a commit merges the only child away: a golden child (a linked clone elsewhere
        // reads through it) is refused now, before the plan is recorded, so that the refusal leaves nothing pending.
        foreach (var child in children)
        {
            using var c = DiskImage.OpenLayer(child, writable: false, options.FileOpener);
            Seals.Check(c, SealPolicy.SnapshotLayers, $"delete snapshot '{name}' ({(plan == "pull" ? "its layer would be pulled into this image" : "this image would be merged into its layer")})");
        }
        // A commit refused for its sizes (or anything else it checks before its first change) is refused now too.
        if (plan == "commit") MergePlanner.Check(children[0], layerPath, CommitOptions(disk, children[0], options));
        // The layer and its children change or go: hold them before the plan is recorded.
        foreach (var file in children.Prepend(layerPath)) scope.Lock(file);
        catalog = catalog with { Pending = new PendingSnapshotOperation { Operation = "delete", Snapshot = entry, Plan = plan, Children = children.ToArray() } };
        catalog.Save(disk);
        return await FinishDeleteAsync(disk, catalog, options, progress, cancel).ConfigureAwait(false);
    }

    private static async Task<SnapshotDeleteResult> FinishDeleteAsync(string disk, SnapshotCatalog catalog, OpenOptions options,
        IProgress<OperationProgress>? progress, CancellationToken cancel)
    {
        var pending = catalog.Pending!;
        var entry = pending.Snapshot;
        string layerPath = PathOf(disk, entry);
        foreach (var file in pending.Children.Prepend(layerPath)) LockScope.Current!.LockIfExists(file);
        var mergeOptions = MergeOptionsOf(options);
        string? commitChild = null;
        var links = SnapshotDeleteResult.None;
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
                        links = links.With(await Merge.PullAsync(child, mergeOptions, progress, cancel).ConfigureAwait(false));
                }
                DurableFiles.Delete(layerPath);
                break;
            case "commit":
                commitChild = pending.Children[0];
                if (File.Exists(OperationJournal.PathFor(commitChild)) || File.Exists(layerPath))
                {
                    links = links.With(await Merge.CommitAsync(commitChild, layerPath, CommitOptions(disk, commitChild, options), progress, cancel).ConfigureAwait(false));
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
        return links;
    }

    private static MergeOptions MergeOptionsOf(OpenOptions options) => new() { Open = options with { Sealed = SealPolicy.SnapshotLayers } };

    // The disk's own layer merged into the snapshot's replaces the disk file; a snapshot's layer merged away is removed.
    private static MergeOptions CommitOptions(string disk, string child, OpenOptions options) => MergeOptionsOf(options) with
    {
        Publish = string.Equals(Path.GetFullPath(child), disk, StringComparison.Ordinal) ? MergePublish.ReplaceImage : MergePublish.RemoveImage,
    };
}
