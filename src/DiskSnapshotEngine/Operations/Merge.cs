using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Operations;

/// <summary>Where merge looks for dependents, and how it opens images.</summary>
public sealed record MergeOptions
{
    /// <summary>How to open the images (search paths for parents, fault injection in tests).</summary>
    public OpenOptions Open { get; init; } = OpenOptions.ReadOnly;

    /// <summary>More folders to search for children (the folders of the chain's files are always searched).</summary>
    public IReadOnlyList<string> ChildFolders { get; init; } = Array.Empty<string>();
}

/// <summary>What a merge did.</summary>
/// <param name="Stats">Bytes moved.</param>
/// <param name="Target">The layer that received the data (commit) or the image's new parent (pull).</param>
/// <param name="Relinked">Children now linked to the target.</param>
/// <param name="Removed">Files removed (the merged layers).</param>
/// <param name="Resumed">True when an interrupted run was finished.</param>
public sealed record MergeResult(CopyStats Stats, string Target, IReadOnlyList<string> Relinked, IReadOnlyList<string> Removed, bool Resumed);

/// <summary>
/// Merge (commit) and pull.
/// <para>Commit copies into ANCESTOR everything IMAGE and the layers between hold, relinks IMAGE's children to
/// ANCESTOR and removes the merged layers. ANCESTOR keeps its version while it is written (its only dependent is the
/// chain being merged), so IMAGE and its children open and read the same at every instant; a journal beside IMAGE
/// records the plan and phase, and running the command again finishes an interrupted merge. The layers between
/// IMAGE and ANCESTOR stop being meaningful on their own once the copy starts: the journal marks them as consumed
/// and they are removed at the end.</para>
/// <para>Pull copies into IMAGE what its parent holds and IMAGE does not, then relinks IMAGE to its grandparent.
/// IMAGE reads the same throughout (it receives exactly the bytes it already showed) and keeps its version, so its
/// own children stay linked.</para>
/// </summary>
public static class Merge
{
    /// <summary>Commits <paramref name="image"/> (and every layer between) into <paramref name="ancestor"/> (default: the parent).</summary>
    /// <exception cref="DiskImageException">InvalidArgument (no parent, ancestor not in the chain), ReadOnly (a layer has other dependents, listed),
    /// DiskFull (with the space needed), Cancelled, and any open or I/O error.</exception>
    public static Task<MergeResult> CommitAsync(string image, string? ancestor = null, MergeOptions? options = null,
        IProgress<OperationProgress>? progress = null, CancellationToken cancel = default) =>
        CommitAsync(image, ancestor, options, progress, cancel, replaceImage: false, snapshotDelete: false);

    /// <summary>
    /// Commit; with <paramref name="replaceImage"/> the target is finally renamed over the image instead of the image
    /// being deleted, so the image's path never goes missing (snapshot delete of a base layer under the current state).
    /// </summary>
    internal static async Task<MergeResult> CommitAsync(string image, string? ancestor, MergeOptions? options,
        IProgress<OperationProgress>? progress, CancellationToken cancel, bool replaceImage, bool snapshotDelete)
    {
        options ??= new MergeOptions();
        image = Path.GetFullPath(image);
        // Every file the merge writes, relinks, renames or removes is locked from before the first change until the
        // end, the image first (its journal is read under that lock): a reader sees the chain before or after the
        // merge, or exit 12, never the target renamed over the image with the merged layers still linked.
        using var scope = LockScope.Begin();
        scope.LockIfExists(image);
        var journal = OperationJournal.Load(image);
        bool resumed = journal is not null;
        if (journal is not null && journal.Operation != "commit")
            ThrowHelper.InvalidArgument($"an interrupted '{journal.Operation}' is recorded in {OperationJournal.PathFor(image)}; finish it with the same command first", image);
        if (journal is null)
        {
            journal = Plan(image, ancestor, options, replaceImage, snapshotDelete);
            Hold(scope, journal);
            journal.Save();
        }
        else Hold(scope, journal);

        var stats = new CopyStats(0, 0);
        if (journal.Phase == "copy")
        {
            stats = await CopyIntoAncestorAsync(journal, options, progress, cancel).ConfigureAwait(false);
            journal = journal with { Phase = "relink" };
            journal.Save();
        }
        var relinked = new List<string>();
        if (journal.Phase == "relink")
        {
            using (var target = DiskImage.OpenLayer(journal.Target!, writable: false, options.Open.FileOpener))
            {
                foreach (var child in journal.Children)
                {
                    cancel.ThrowIfCancellationRequested();
                    if (!File.Exists(child)) continue;
                    using var layer = DiskImage.OpenLayer(child, writable: true, options.Open.FileOpener);
                    // Relinking is idempotent: a child already pointing at the target was done before a crash.
                    if (!Dependents.LinksTo(layer, target)) layer.SetParent(ParentDescriptor.Of(target));
                    layer.Flush();
                    relinked.Add(child);
                }
            }
            journal = journal with { Phase = "remove" };
            journal.Save();
        }
        var removed = new List<string>();
        if (journal.ReplaceImage && File.Exists(journal.Target!))
        {
            // One atomic rename replaces the image by the merged target: the image's path always names a complete disk.
            DurableFiles.Rename(journal.Target!, image, overwrite: true);
            removed.Add(journal.Target!);
        }
        foreach (var layer in journal.ReplaceImage ? journal.Merged.Skip(1) : journal.Merged)
        {
            if (!File.Exists(layer)) continue;
            DurableFiles.Delete(layer);
            removed.Add(layer);
        }
        journal.Delete();
        return new MergeResult(stats, journal.Target!, relinked, removed, resumed);
    }

    private static OperationJournal Plan(string image, string? ancestor, MergeOptions options, bool replaceImage, bool snapshotDelete)
    {
        using var chain = DiskImage.Open(image, options.Open with { Writable = false });
        if (chain.Layers.Count < 2)
            ThrowHelper.InvalidArgument("the image has no parent: there is nothing to merge it into", image);
        int a = 1;
        if (ancestor is not null)
        {
            a = ChainOpener.IndexOf(chain, ancestor);
            if (a <= 0)
                ThrowHelper.InvalidArgument(
                    $"{Path.GetFullPath(ancestor)} is not an ancestor of the image (its chain: {string.Join(" -> ", chain.Layers.Select(l => l.Path))})", image);
        }
        var layers = chain.Layers;
        var folders = layers.Select(l => Dependents.FolderOf(l.Path)).Concat(options.ChildFolders).ToList();
        var chainPaths = layers.Select(l => l.Path).ToList();

        // The target and every layer between must have no dependent outside the chain: their content changes or
        // they disappear, which would silently corrupt such a dependent.
        var blockers = new List<string>();
        for (int i = 1; i <= a; i++)
            foreach (var c in Dependents.ChildrenOf(layers[i], folders, options.Open.FileOpener, chainPaths))
                blockers.Add($"{c} (child of {layers[i].Path})");
        if (blockers.Count > 0)
            throw new DiskImageException(ErrorKind.ReadOnly,
                $"cannot merge: other images depend on layers that would change or disappear: {string.Join("; ", blockers)}", image);

        // A snapshot's layer changes content (target) or disappears (merged): only snapshot delete may do that,
        // since it also updates the catalog.
        if (!snapshotDelete)
        {
            var named = SnapshotLayers(folders);
            var hit = layers.Take(a + 1).Where(l => named.ContainsKey(l.Path)).Select(l => $"{l.Path} is snapshot '{named[l.Path]}'").ToList();
            if (hit.Count > 0)
                throw new DiskImageException(ErrorKind.ReadOnly,
                    $"cannot merge: {string.Join("; ", hit)}; use 'dse snapshot delete' so that the catalog stays right", image);
        }
        // Beyond the dependents these folders show: a sealed layer may have children anywhere (its seal says so), so
        // the target must not change and no layer between may disappear, whatever the folders hold.
        for (int i = 0; i <= a; i++) Seals.Check(layers[i], options.Open.Sealed, i == a ? "merge into it" : "merge it away");
        var children = Dependents.ChildrenOf(layers[0], folders, options.Open.FileOpener, chainPaths);
        if (replaceImage && children.Count > 0)
            throw new DiskImageException(ErrorKind.ReadOnly, $"cannot merge: images depend on it: {string.Join("; ", children)}", image);
        long needed = 0;
        foreach (var e in chain.GetExtents(0, chain.VirtualSize, a))
            if (e.Kind == ExtentKind.Data) needed += e.Length;
        DurableFiles.RequireFreeSpace(layers[a].Path, needed, "the merge");

        var journal = new OperationJournal
        {
            Operation = "commit",
            Image = image,
            Target = layers[a].Path,
            TargetId = layers[a].Identity.Id,
            Merged = layers.Take(a).Select(l => l.Path).ToArray(),
            Children = children.ToArray(),
            Phase = "copy",
            ReplaceImage = replaceImage,
        };
        return journal;
    }

    // Locks the files a commit changes; the plan's chain is closed by then (its shared locks would conflict).
    private static void Hold(LockScope scope, OperationJournal journal)
    {
        foreach (var file in journal.Merged.Append(journal.Target!).Concat(journal.Children))
            scope.LockIfExists(file);
    }

    // Layer file -> snapshot name, from every snapshot catalog in the folders.
    private static Dictionary<string, string> SnapshotLayers(IEnumerable<string> folders)
    {
        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var folder in folders.Distinct())
        {
            IEnumerable<string> catalogs;
            try { catalogs = Directory.EnumerateFiles(folder, "*" + Snapshots.SnapshotCatalog.Suffix).ToList(); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { continue; }
            foreach (var file in catalogs)
            {
                string disk = file[..^Snapshots.SnapshotCatalog.Suffix.Length];
                try
                {
                    foreach (var s in Snapshots.SnapshotCatalog.Load(disk).Snapshots)
                        map[Path.Combine(folder, s.File)] = s.Name;
                }
                catch (DiskImageException) { }
            }
        }
        return map;
    }

    private static async Task<CopyStats> CopyIntoAncestorAsync(OperationJournal journal, MergeOptions options,
        IProgress<OperationProgress>? progress, CancellationToken cancel)
    {
        // The journal lists the merged layers top first; the target is the next one down.
        int a = journal.Merged.Length;
        using var chain = ChainOpener.Open(journal.Image, options.Open, a);
        var target = chain.Layers[a];
        if (!string.Equals(target.Path, journal.Target, StringComparison.Ordinal) || target.Identity.Id != journal.TargetId)
            throw new DiskImageException(ErrorKind.ChainInvalid,
                $"the chain changed since the merge was planned: layer {a} is {target.Path}, the journal names {journal.Target}",
                journal.Image, "journal");
        // Only the merged chain depends on the target, and every byte written is one that chain already shows
        // above it, so the target keeps its version: the image and its children stay linked throughout.
        target.PreserveVersionOnWrite = true;
        var below = new DiskChain(chain.Layers.Skip(a).ToArray());
        var plan = chain.GetExtents(0, chain.VirtualSize, a)
            .Where(e => e.Kind != ExtentKind.NotPresent)
            .Select(e => new CopyRange(e.Offset, e.Length));
        long total = 0;
        foreach (var r in plan) total += r.Length;
        long written = 0, zero = 0;
        await ExtentPump.RunAsync(plan, ExtentPump.ChunkFor(target.BlockSize),
            (off, buf) => chain.Read(off, buf),
            (off, data, len, isZero) =>
            {
                // Zeros above must hide whatever the target (or its parents) hold there.
                if (isZero) { below.WriteZeroes(off, len); zero += len; }
                else { below.Write(off, data); written += len; }
            },
            done => progress?.Report(new OperationProgress("merging", done, total)), cancel).ConfigureAwait(false);
        // A target renamed over the image takes its place, seal included (a snapshot layer that becomes the live disk).
        if (journal.ReplaceImage && target is ISealableLayer sealable) sealable.SetSeal(Seals.Of(chain.Layers[0]));
        target.Flush();
        return new CopyStats(written, zero);
    }

    /// <summary>
    /// Pull: copies into <paramref name="image"/> what its parent holds where the image holds nothing, then relinks
    /// the image to its grandparent. The image reads the same throughout and keeps its version.
    /// </summary>
    /// <exception cref="DiskImageException">Unsupported (the parent is a base image), DiskFull, Cancelled, any open or I/O error.</exception>
    public static async Task<MergeResult> PullAsync(string image, MergeOptions? options = null,
        IProgress<OperationProgress>? progress = null, CancellationToken cancel = default)
    {
        options ??= new MergeOptions();
        image = Path.GetFullPath(image);
        using var scope = LockScope.Begin();
        scope.LockIfExists(image);
        var journal = OperationJournal.Load(image);
        bool resumed = journal is not null;
        if (journal is not null && journal.Operation != "pull")
            ThrowHelper.InvalidArgument($"an interrupted '{journal.Operation}' is recorded in {OperationJournal.PathFor(image)}; finish it with the same command first", image);

        using var chain = ChainOpener.Open(image, options.Open, 0);
        var top = chain.Top;
        if (journal is not null && chain.Layers.Count > 1 && chain.Layers[1].Identity.Id == journal.TargetId
            && string.Equals(chain.Layers[1].Path, journal.Target, StringComparison.Ordinal))
        {
            // The relink had been made durable before the interruption: only the journal was left.
            journal.Delete();
            return new MergeResult(new CopyStats(0, 0), journal.Target!, Array.Empty<string>(), Array.Empty<string>(), true);
        }
        if (chain.Layers.Count < 2)
            ThrowHelper.InvalidArgument("the image has no parent: there is nothing to pull", image);
        if (chain.Layers.Count < 3)
            throw new DiskImageException(ErrorKind.Unsupported,
                $"the parent {chain.Layers[1].Path} is a base image: pulling it would leave the image without a parent; use a full clone to make an independent copy", image);
        var grandparent = chain.Layers[2];
        long needed = 0;
        foreach (var e in chain.GetExtents(0, chain.VirtualSize, 2))
            if (e.LayerIndex == 1 && e.Kind == ExtentKind.Data) needed += e.Length;
        DurableFiles.RequireFreeSpace(image, needed, "the pull");
        journal = new OperationJournal { Operation = "pull", Image = image, Target = grandparent.Path, TargetId = grandparent.Identity.Id, Phase = "copy" };
        journal.Save();

        // The image receives exactly the bytes it already shows, so its version stays and its children stay linked.
        top.PreserveVersionOnWrite = true;
        var plan = chain.GetExtents(0, chain.VirtualSize, 2)
            .Where(e => e.LayerIndex == 1)
            .Select(e => new CopyRange(e.Offset, e.Length));
        long written = 0, zero = 0;
        await ExtentPump.RunAsync(plan, ExtentPump.ChunkFor(top.BlockSize),
            (off, buf) => chain.Read(off, buf),
            (off, data, len, isZero) =>
            {
                if (isZero) { chain.WriteZeroes(off, len); zero += len; }
                else { chain.Write(off, data); written += len; }
            },
            done => progress?.Report(new OperationProgress("pulling", done, needed)), cancel).ConfigureAwait(false);
        // Data first, durable; only then the new link, so a crash never leaves a link to a parent missing bytes.
        top.Flush();
        top.SetParent(ParentDescriptor.Of(grandparent));
        top.Flush();
        journal.Delete();
        return new MergeResult(new CopyStats(written, zero), grandparent.Path, Array.Empty<string>(), Array.Empty<string>(), resumed);
    }
}
