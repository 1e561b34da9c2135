using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Operations;

/// <summary>
/// Plans a commit: the ancestor that receives the data, the layers that disappear, the children to relink, and the
/// refusals (dependents outside the chain, layers the caller protects, too little free space).
/// </summary>
internal static class MergePlanner
{
    /// <summary>Checks that the commit may run, and records its plan (not yet saved) as the journal of phase "copy".</summary>
    /// <exception cref="DiskImageException">InvalidArgument, ReadOnly (dependents, or the guard refuses), DiskFull, open errors.</exception>
    public static OperationJournal Plan(string image, string? ancestor, MergeOptions options)
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
        // A target this user may not write (root's golden, left unsealed by a clone it could not seal) is refused
        // first, before the images depending on it are named (the refusal the user must act on first) and before the
        // target grows or the journal is written: a refused merge leaves no file behind. A sealed one is refused by its
        // seal, whose advice says why it cannot be written and what to do instead (SealAdvice).
        if (FileNode.WhyNotWritable(layers[a].Path) is { } why)
        {
            Seals.Check(layers[a], options.Open.Sealed, "merge into it", SoleChildWaiver(layers, a, options.Open.Sealed, "merge into it"));
            throw new DiskImageException(ErrorKind.ReadOnly, $"cannot merge into it: {why}", layers[a].Path);
        }
        var folders = layers.SelectMany(l => Dependents.FoldersBeside(l.Path)).Concat(options.ChildFolders).ToList();
        var chainPaths = layers.Select(l => l.Path).ToList();

        // The target and every layer between must have no dependent outside the chain: their content changes or
        // they disappear, which would silently corrupt such a dependent.
        var blockers = new List<string>();
        for (int i = 1; i <= a; i++)
            foreach (var c in Dependents.ChildrenOf(layers[i], folders, options.Open, chainPaths))
                blockers.Add($"{c} (child of {layers[i].Path})");
        if (blockers.Count > 0)
            throw new DiskImageException(ErrorKind.ReadOnly,
                $"cannot merge: other images depend on layers that would change or disappear: {string.Join("; ", blockers)}", image);

        // Layers the caller protects (a snapshot's layer may change or disappear only through snapshot delete, which
        // also updates the catalog).
        if (options.Guard?.Refusal(layers.Take(a + 1).Select(l => l.Path).ToList(), folders) is string refusal)
            throw new DiskImageException(ErrorKind.ReadOnly, $"cannot merge: {refusal}", image);
        // Beyond the dependents these folders show: a sealed layer may have children anywhere (its seal says so), so
        // the target must not change and no layer between may disappear, whatever the folders hold. One exception: a
        // layer whose seal records the merged layer above it as the only clone dse made of it has no other dependent
        // by dse's doing, so its golden seal does not stop the merge (and is lifted from the target once it is done),
        // as long as nobody else may read it (see SoleChildWaiver).
        for (int i = 0; i <= a; i++)
        {
            string action = i == a ? "merge into it" : "merge it away";
            Seals.Check(layers[i], options.Open.Sealed, action, SoleChildWaiver(layers, i, options.Open.Sealed, action));
        }
        var children = Dependents.ChildrenOf(layers[0], folders, options.Open, chainPaths);
        if (options.Publish == MergePublish.ReplaceImage && children.Count > 0)
            throw new DiskImageException(ErrorKind.ReadOnly, $"cannot merge: images depend on it: {string.Join("; ", children)}", image);
        MergeSizes.CheckSmallerImage(chain, a, children.Count > 0, options.Publish == MergePublish.ReplaceImage, image);
        // Every file the merge writes, relinks, renames or removes is a link's target when reached through one
        // (NamedImage): a link fs.protected_symlinks would not follow is refused now, not in the remove phase after the copy.
        foreach (var path in layers.Take(a + 1).Select(l => l.Path).Concat(children))
            NamedImage.RequireFollowable(path);
        // The names the merge makes meaningless: the merged layers it removes (or, replacing the image, the target it
        // renames away). Those named through a link are recorded with the file the link leads to now, so the remove
        // phase removes a link only while it still leads to the file the merge removed (MergeLinks).
        bool replace = options.Publish == MergePublish.ReplaceImage;
        var links = layers.Take(a + 1).Skip(replace ? 1 : 0).Take(a).Select(l => l.Path)
            .Where(p => FileNode.LinkTargetOf(p) is not null).Select(p => new JournalLink(p, FileNode.Target(p))).ToArray();
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
            ReplaceImage = replace,
            Links = links,
            // Recorded under the locks the plan is taken under: the files a rerun may rename or remove, and nothing else.
            Files = layers.Take(a + 1).Select(l => l.Path).Prepend(image).Distinct(StringComparer.Ordinal).Select(OperationJournal.Record).ToArray(),
            LiftSeal = (Seals.Of(layers[a]) & SoleChildWaiver(layers, a, options.Open.Sealed, "merge into it")) != SealReasons.None,
        };
        return journal;
    }

    /// <summary>Refuses now, changing nothing, any commit that <see cref="Merge.CommitAsync"/> would refuse before its first change (for callers that record their own plan first).</summary>
    /// <exception cref="DiskImageException">As <see cref="Plan"/> and <see cref="MergeSizes.CheckGrowth(OperationJournal, MergeOptions)"/>.</exception>
    public static void Check(string image, string? ancestor, MergeOptions options) =>
        MergeSizes.CheckGrowth(Plan(NamedImage.Of(image).Path, ancestor, options), options);

    /// <summary>
    /// Golden when layer <paramref name="i"/>'s seal records the layer above it (which the merge consumes) as its sole
    /// clone and nobody may read the layer without being allowed to write it (<see cref="FileNode.ReadableByNonWriters"/>):
    /// such a reader may have made linked clones of it that the seal could not record (a user's clone of root's golden).
    /// </summary>
    /// <exception cref="DiskImageException">ReadOnly when the record is not trusted for that reason and <paramref name="policy"/> does not accept the seal.</exception>
    public static SealReasons SoleChildWaiver(IReadOnlyList<IDiskLayer> layers, int i, SealPolicy policy, string action)
    {
        if (i == 0 || !Seals.IsSoleChild(layers[i], layers[i - 1])) return SealReasons.None;
        if (FileNode.ReadableByNonWriters(layers[i].Path) is not { } who) return SealReasons.Golden;
        if (!Seals.Allows(policy, Seals.Of(layers[i])))
            throw new DiskImageException(ErrorKind.ReadOnly,
                $"cannot {action}: it is sealed and readable by other users ({who}), who may have linked clones dse cannot see; " +
                SealAdvice.For(layers[i].Path, Seals.Of(layers[i])) +
                (FileNode.WhyNotWritable(layers[i].Path) is null ? ", or merge --force" : ""), layers[i].Path);
        return SealReasons.None;
    }
}
