using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Operations;

public static partial class Merge
{
    /// <summary>
    /// Pull: copies into <paramref name="image"/> what its parent holds where the image holds nothing, then relinks
    /// the image to its grandparent. The image reads the same throughout and keeps its version.
    /// </summary>
    /// <exception cref="DiskImageException">Unsupported (the parent is a base image), DiskFull, Cancelled, any open or I/O error.</exception>
    public static async Task<MergeResult> PullAsync(string image, MergeOptions? options = null,
        IProgress<OperationProgress>? progress = null, CancellationToken cancel = default)
    {
        options ??= new MergeOptions();
        // Through a symbolic link: the chain is opened at the link, the real child is written in place (NamedImage).
        var named = NamedImage.Of(image);
        using var scope = LockScope.Begin();
        scope.LockIfExists(named.File);
        var journal = OperationJournal.LoadOwn(named.Path, "pull");
        bool resumed = journal is not null;
        // The lock is on named.File: a journal whose name (a link re-pointed since the crash) leads elsewhere would
        // have the rerun write a file it does not hold, under a journal that is not its own.
        if (journal is not null && !named.LeadsHere(journal.Image))
            throw new DiskImageException(ErrorKind.ChainInvalid,
                $"the interrupted pull's journal names {journal.Image}, which no longer leads to {named.File}",
                OperationJournal.PathFor(named.File), "journal");
        // A rerun opens the chain where the interrupted run did, whichever name leads it to the journal.
        image = journal?.Image ?? named.Path;

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
        var plan = ExtentPlan.Of(chain, 2, static e => e.LayerIndex == 1, skipFileHoles: false);
        long needed = plan.Extents.Where(e => e.Kind == ExtentKind.Data).Sum(e => e.Length);
        DurableFiles.RequireFreeSpace(image, needed, "the pull");
        journal = new OperationJournal { Operation = "pull", Image = image, Target = grandparent.Path, TargetId = grandparent.Identity.Id, Phase = "copy" };
        journal.Save();

        // The image receives exactly the bytes it already shows, so its version stays and its children stay linked.
        top.PreserveVersionOnWrite = true;
        long written = 0, zero = 0;
        await ExtentPump.RunAsync(plan.Ranges, ExtentPump.ChunkFor(top.BlockSize), plan.Read,
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
