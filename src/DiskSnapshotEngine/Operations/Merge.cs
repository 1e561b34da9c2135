using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Operations;

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
public static partial class Merge
{
    /// <summary>Commits <paramref name="image"/> (and every layer between) into <paramref name="ancestor"/> (default: the parent).</summary>
    /// <exception cref="DiskImageException">InvalidArgument (no parent, ancestor not in the chain), ReadOnly (a layer has other dependents, listed,
    /// or <see cref="MergeOptions.Guard"/> protects it), DiskFull (with the space needed), Cancelled, and any open or I/O error.</exception>
    public static async Task<MergeResult> CommitAsync(string image, string? ancestor = null, MergeOptions? options = null,
        IProgress<OperationProgress>? progress = null, CancellationToken cancel = default)
    {
        options ??= new MergeOptions();
        // Through a symbolic link: the chain is opened at the link, the real child is merged away (NamedImage).
        var named = NamedImage.Of(image);
        // Every file the merge writes, relinks, renames or removes is locked from before the first change until the
        // end, the image first (its journal is read under that lock): a reader sees the chain before or after the
        // merge, or exit 12, never the target renamed over the image with the merged layers still linked.
        using var scope = LockScope.Begin();
        scope.LockIfExists(named.File);
        var journal = OperationJournal.LoadOwn(named.Path, "commit");
        bool resumed = journal is not null;
        if (journal is null)
        {
            journal = MergePlanner.Plan(named.Path, ancestor, options);
            Hold(scope, journal);
            await MergeSizes.GrowTargetAsync(journal, options, cancel).ConfigureAwait(false);
            journal.Save();
        }
        else
        {
            Hold(scope, journal);
            // A file the interrupted run recorded that is another file now (a new image made at the path, a layer
            // replaced by a link) is neither removed nor "finished": the user decides.
            journal.RequireRecordedFiles();
        }

        var stats = new CopyStats(0, 0);
        if (journal.Phase == "copy")
        {
            stats = await CopyIntoAncestorAsync(journal, resumed, options, progress, cancel).ConfigureAwait(false);
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
        // The files the plan recorded (a layer's link's target then): a link re-pointed since is not followed to another file.
        if (journal.ReplaceImage && journal.FileOf(journal.Target!) is var replacement && File.Exists(replacement))
        {
            // One atomic rename replaces the image by the merged target: the image's path always names a complete disk.
            // Real file over real file: a link to the image stays a link; one to the target leads nowhere now (MergeLinks).
            DurableFiles.Rename(replacement, journal.FileOf(journal.Image), overwrite: true);
            removed.Add(replacement);
        }
        foreach (var layer in journal.ReplaceImage ? journal.Merged.Skip(1) : journal.Merged)
        {
            string file = journal.FileOf(layer);
            if (!File.Exists(file)) continue;
            // A layer reached through a link is its target: the real file goes, and the data with it.
            DurableFiles.Delete(file);
            // The file deleted, not the name: a link to it is reported on its own (removed or kept, MergeLinks).
            removed.Add(file);
        }
        var (removedLinks, keptLinks) = MergeLinks.RemoveAndEnd(journal);
        return new MergeResult(stats, journal.Target!, relinked, removed, resumed)
        {
            Unsealed = journal.LiftSeal && !journal.ReplaceImage ? journal.Target : null,
            RemovedLinks = removedLinks,
            KeptLinks = keptLinks,
        };
    }

    // Locks the files a commit changes, the files the plan recorded (FileOf), so that a rerun locks the files it
    // removes, not whatever a name re-pointed since leads to; the plan's chain is closed by then (its shared locks would conflict).
    private static void Hold(LockScope scope, OperationJournal journal)
    {
        foreach (var file in journal.Merged.Append(journal.Target!).Concat(journal.Children))
            scope.LockIfExists(journal.FileOf(file));
    }

    private static async Task<CopyStats> CopyIntoAncestorAsync(OperationJournal journal, bool resumed, MergeOptions options,
        IProgress<OperationProgress>? progress, CancellationToken cancel)
    {
        // The journal lists the merged layers top first; the target is the next one down.
        int a = journal.Merged.Length;
        // A target whose golden seal the plan waived (its sole clone is merged into it) is opened past the seal, and
        // the waiver checked again on what is open now: another clone may have been made since the plan.
        var open = journal.LiftSeal ? options.Open with { Sealed = SealPolicy.Override } : options.Open;
        using var chain = ChainOpener.Open(journal.Image, open, a);
        var target = chain.Layers[a];
        if (!string.Equals(target.Path, journal.Target, StringComparison.Ordinal) || target.Identity.Id != journal.TargetId)
            throw new DiskImageException(ErrorKind.ChainInvalid,
                $"the chain changed since the merge was planned: layer {a} is {target.Path}, the journal names {journal.Target}",
                journal.Image, "journal");
        // A resume trusts the waiver the plan recorded: it must always be able to finish (a chmod since must not strand it half done).
        if (journal.LiftSeal && !resumed) Seals.Check(target, options.Open.Sealed, "merge into it", MergePlanner.SoleChildWaiver(chain.Layers, a, options.Open.Sealed, "merge into it"));
        // Only the merged chain depends on the target, and every byte written is one that chain already shows
        // above it, so the target keeps its version: the image and its children stay linked throughout.
        target.PreserveVersionOnWrite = true;
        // New payload goes to fresh space that no table maps until the target's commit after a flush, so bulk data can
        // go straight to the device while the next pieces are read: the final flush then has almost nothing to wait on.
        if (target.File is ImageFile targetFile) targetFile.UseDirectWrites();
        var below = new DiskChain(chain.Layers.Skip(a).ToArray());
        var plan = ExtentPlan.Of(chain, a, static e => e.Kind != ExtentKind.NotPresent, skipFileHoles: false);
        long total = plan.Bytes;
        long shared = 0;
        // Where the file system shares extents (reflink), data the target can place is not copied at all.
        if (target is IPlaceableLayer placeable && target.File is ImageFile placeFile)
            plan = plan.ShareInto(placeFile, placeable, out shared, cancel: cancel);
        long written = shared, zero = 0;
        await ExtentPump.RunAsync(plan.Ranges, ExtentPump.ChunkFor(target.BlockSize), plan.Read,
            (off, data, len, isZero) =>
            {
                // Zeros above must hide whatever the target (or its parents) hold there.
                if (isZero) { below.WriteZeroes(off, len); zero += len; }
                else { below.Write(off, data); written += len; }
            },
            done => progress?.Report(new OperationProgress("merging", shared + done, total)), cancel).ConfigureAwait(false);
        // A target renamed over the image takes its place, seal included (a snapshot layer that becomes the live disk).
        if (journal.ReplaceImage && target is ISealableLayer sealable) sealable.SetSeal(Seals.Of(chain.Layers[0]), Seals.SoleChildOf(chain.Layers[0]));
        // Its sole clone is now merged into it: nothing dse made reads through it any more.
        else if (journal.LiftSeal && target is ISealableLayer lifted) lifted.SetSeal(lifted.Seal & ~SealReasons.Golden);
        target.Flush();
        return new CopyStats(written, zero);
    }
}
