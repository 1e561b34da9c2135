using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Operations;

/// <summary>What a rebase did.</summary>
/// <param name="Stats">Bytes copied into the image to keep its content.</param>
/// <param name="NewParent">The parent the image now links to.</param>
/// <param name="Mode">"safe" (differences copied), "identity" (the new parent is the same image, moved or copied), "content" (unsafe: the new parent was verified equal), or "unverified" (unsafe, old parent missing and the format records no parent identity: relinked as asked).</param>
/// <param name="NewParentSeal">What became of the new parent's seal (as for a linked clone's parent).</param>
public sealed record RebaseResult(CopyStats Stats, string NewParent, string Mode, ParentSeal NewParentSeal);

/// <summary>
/// Rebase: gives an image a new parent. Safe mode keeps the image's content identical: wherever the image holds
/// nothing and the old and new parents differ, the old content is copied into the image first; only then is the
/// link rewritten. The image keeps its version, so its own children stay linked. Unsafe mode copies nothing and
/// rewrites the link only after checking that the new parent is the same image (identity and version) or reads
/// the same as the old one. When the old parent cannot be found (it was moved), a new parent with the identity
/// and version the image recorded is accepted in either mode: that is the "parent was moved" case.
/// </summary>
public static class Rebase
{
    private const int Chunk = 1 << 20;

    /// <summary>Rebases <paramref name="image"/> onto <paramref name="newParent"/>.</summary>
    /// <exception cref="DiskImageException">InvalidArgument (no parent), ChainInvalid (the new parent descends from the image, sizes differ),
    /// ParentMismatch (unsafe mode: the new parent differs; the moved case: it is another image), Cancelled, open and I/O errors.</exception>
    public static async Task<RebaseResult> RunAsync(string image, string newParent, bool unsafeMode = false,
        OpenOptions? options = null, IProgress<OperationProgress>? progress = null, CancellationToken cancel = default)
    {
        options ??= OpenOptions.ReadOnly;
        var (stats, parent, mode, seal, oldRecord) = await RelinkAsync(image, newParent, unsafeMode, options, progress, cancel).ConfigureAwait(false);
        var result = new RebaseResult(stats, parent, mode, SealNewParent(seal, options));
        if (oldRecord is { } stale) ForgetSoleClone(stale, options);
        return result;
    }

    // The old parent's seal named the image as its only clone; the image no longer reads through it, so the record turns
    // unknown ("sealed, no sole clone"), as 'dse seal' leaves it. Done after the relink: a crash or a failure between
    // leaves a record naming an image that is no longer its child, which no merge can use (a merge into the old parent
    // must come from one of its children, and rebasing the image back turns the record unknown). Best effort: another
    // process holding the old parent (a VM on another clone) leaves it so.
    private static void ForgetSoleClone(SoleRecord stale, OpenOptions options)
    {
        // A parent this process may not write (its mode, or reached through a link dse does not write through) is left
        // as an unwritable one is: the relink is done, and the stale record harms nothing.
        if (Seals.WhyNotWritable(stale.Parent) is not null) return;
        try
        {
            using var layer = DiskImage.OpenLayer(stale.Parent, writable: true, options.FileOpener);
            if (layer.Identity != stale.Identity || layer is not ISealableLayer sealable || !sealable.SoleChild.Is(stale.CloneId)) return;
            sealable.SetSeal(sealable.Seal);
            layer.Flush();
        }
        catch (DiskImageException) { }
    }

    // A parent whose seal records the image (clone id CloneId) as its only clone.
    private sealed record SoleRecord(string Parent, ImageIdentity Identity, Guid CloneId);

    // The new parent is now read through as a linked clone's parent is, so it is sealed as 'dse seal' seals it (no sole
    // clone recorded: the image was not made from it). A sealed one keeps its reasons (a snapshot layer stays one:
    // rebasing the current state onto it is the snapshot verbs' business), but a sole clone its seal records is no longer
    // the only image reading through it: the record turns unknown, as a second linked clone makes it (Seals.WithNewChild,
    // with no clone id). Decided from the new parent as the relink opened it, written once the relink is done (the
    // relink's shared lock on it released).
    private static NewReaderSeal SealFor(IDiskLayer newParent) =>
        NewReaderSeal.For(newParent, Seals.Of(newParent) == SealReasons.None ? SealReasons.Golden : SealReasons.None, Guid.Empty);

    // The relink is committed: whatever keeps the seal from being written (no mark, a file this process cannot write,
    // another process holding it, an I/O error) leaves it as it was and says why; the verb succeeds.
    private static ParentSeal SealNewParent(NewReaderSeal seal, OpenOptions options)
    {
        try
        {
            return seal.Apply(options.FileOpener);
        }
        catch (DiskImageException e)
        {
            // Unlike an unwritable file, nothing keeps this parent from changing: the user must seal it.
            return seal.Failed(e.Kind == ErrorKind.Locked ? ParentSeal.Held : e.Detail);
        }
    }

    private sealed record Relinked(CopyStats Stats, string NewParent, string Mode, NewReaderSeal Seal, SoleRecord? OldRecord = null);

    private static async Task<Relinked> RelinkAsync(string image, string newParent, bool unsafeMode,
        OpenOptions options, IProgress<OperationProgress>? progress, CancellationToken cancel)
    {
        // Through a symbolic link: the chain is opened at the link (its old parent is the one QEMU finds there), the link's
        // target is relinked in place, and its new relative backing path is made from the link's folder (NamedImage).
        image = NamedImage.Of(image).Path;
        newParent = Path.GetFullPath(newParent);
        using var fresh = DiskImage.Open(newParent, options with { Writable = false });
        if (ChainOpener.IndexOf(fresh, image) >= 0)
            throw new DiskImageException(ErrorKind.ChainInvalid, $"{newParent} is the image itself or one of its descendants", image, "parent link");
        var newTop = fresh.Top;
        var seal = SealFor(newTop);

        DiskChain chain;
        try
        {
            chain = ChainOpener.Open(image, options, 0);
        }
        catch (DiskImageException e) when (e.Kind == ErrorKind.ParentNotFound)
        {
            return RelinkMoved(image, newTop, options, e, unsafeMode);
        }
        using (chain)
        {
            var top = chain.Top;
            if (chain.Layers.Count < 2)
                ThrowHelper.InvalidArgument("the image has no parent; a base image cannot be given one", image);
            ChainRules.CheckCompatible(top, newTop);
            // VDI and VHD keep one size per chain (their relink refuses another): refuse before any data is copied.
            if (top.Format is ImageFormat.Vdi or ImageFormat.Vhd)
                ChainRules.CheckSameSize(top.Path, top.VirtualSize, newTop.Path, newTop.VirtualSize);
            var old = new DiskChain(chain.Layers.Skip(1).ToArray());
            var oldTop = old.Top;
            var oldRecord = Seals.IsSoleChild(oldTop, top) ? new SoleRecord(oldTop.Path, oldTop.Identity, Seals.CloneIdOf(top)) : null;
            if (unsafeMode)
            {
                string mode = "identity";
                if (oldTop.Identity != newTop.Identity || oldTop.Identity == default)
                {
                    var cmp = ImageCompare.Run(old, fresh, null, cancel);
                    if (!cmp.Identical)
                        throw new DiskImageException(ErrorKind.ParentMismatch,
                            $"{newParent} is not the same image as the current parent {oldTop.Path} and its content differs ({cmp.Reason}); rebase without --unsafe to keep the image's content", image, "parent link");
                    mode = "content";
                }
                Relink(top, newTop);
                return new Relinked(new CopyStats(0, 0), newParent, mode, seal, oldRecord);
            }

            // Where the image holds nothing and either parent holds data, the two may differ: those are the only
            // ranges read. Everything else reads as zeros under both parents.
            long size = chain.VirtualSize;
            var parents = ExtentOverlay.Walk(ExtentsTo(old, size), ExtentsTo(fresh, size))
                .Select(p => new ChainExtent(p.Offset, p.Length, p.A == ExtentKind.Data || p.B == ExtentKind.Data ? ExtentKind.Data : ExtentKind.Zero, -1));
            var plan = ExtentOverlay.Coalesce(ExtentOverlay.Walk(chain.GetExtents(0, size, 1), parents)
                .Where(p => p.A == ExtentKind.NotPresent && p.B == ExtentKind.Data)
                .Select(p => (p.Offset, (long)p.Length)));
            var planned = plan.ToList();
            long total = planned.Sum(r => r.Length);
            DurableFiles.RequireFreeSpace(image, total, "the rebase");

            // The image receives only bytes it already shows: its version stays, its children stay linked.
            top.PreserveVersionOnWrite = true;
            long written = 0, zero = 0;
            using var other = AlignedBufferPool.Rent(ExtentPump.ChunkFor(top.BlockSize));
            await ExtentPump.RunAsync(planned, ExtentPump.ChunkFor(top.BlockSize),
                (off, buf) => ReadTo(old, off, buf),
                (off, data, len, isZero) =>
                {
                    var theirs = other.Span[..len];
                    ReadTo(fresh, off, theirs);
                    if (isZero)
                    {
                        if (SpanHelpers.IsAllZero(theirs)) return;
                        chain.WriteZeroes(off, len);
                        zero += len;
                    }
                    else if (!data.SequenceEqual(theirs))
                    {
                        chain.Write(off, data);
                        written += len;
                    }
                },
                done => progress?.Report(new OperationProgress("rebasing", done, total)), cancel).ConfigureAwait(false);
            // Copied data must be durable before the link changes, or a crash could expose the new parent's bytes.
            top.Flush();
            Relink(top, newTop);
            return new Relinked(new CopyStats(written, zero), newParent, "safe", seal, oldRecord);
        }
    }

    // A parent may be smaller than the image (sizes may differ along a chain): past its end it reads zeros.
    private static IEnumerable<ChainExtent> ExtentsTo(DiskChain parent, long size)
    {
        long inside = Math.Min(size, parent.VirtualSize);
        foreach (var e in parent.GetExtents(0, inside)) yield return e;
        if (size > inside) yield return new ChainExtent(inside, size - inside, ExtentKind.NotPresent, -1);
    }

    private static void ReadTo(DiskChain parent, long offset, Span<byte> buffer)
    {
        int inside = (int)Math.Clamp(parent.VirtualSize - offset, 0, buffer.Length);
        if (inside > 0) parent.Read(offset, buffer[..inside]);
        buffer[inside..].Clear();
    }

    private static void Relink(IDiskLayer top, IDiskLayer newParent)
    {
        top.SetParent(ParentDescriptor.Of(newParent));
        top.Flush();
    }

    private static Relinked RelinkMoved(string image, IDiskLayer newTop, OpenOptions options, DiskImageException notFound, bool unsafeMode)
    {
        using var top = DiskImage.OpenLayer(image, writable: true, options.FileOpener);
        var link = top.ParentLink!;
        if (link.ParentVersion is null)
        {
            // The format names its parent by path only (qcow2): nothing tells whether NEW is the image that was moved.
            if (!unsafeMode)
                throw new DiskImageException(ErrorKind.ParentMismatch,
                    $"the current parent cannot be found ({notFound.Detail}) and the image records no parent identity to verify {newTop.Path} against; " +
                    "if it is the same image, moved, rebase with --unsafe", image, "parent link");
            ChainRules.CheckCompatible(top, newTop);
            Relink(top, newTop);
            return new Relinked(new CopyStats(0, 0), newTop.Path, "unverified", SealFor(newTop));
        }
        bool sameId = link.ParentId is not Guid id || id == newTop.Identity.Id;
        bool sameVersion = newTop.Identity.Version == link.ParentVersion || link.AlternateParentVersion == newTop.Identity.Version;
        if (!sameId || !sameVersion)
            throw new DiskImageException(ErrorKind.ParentMismatch,
                $"the current parent cannot be found ({notFound.Detail}) and {newTop.Path} is not the image it recorded " +
                $"({link.VersionName} {{{link.ParentVersion}}}, found {{{newTop.Identity.Version}}}), so the content cannot be kept", image, "parent link");
        ChainRules.CheckCompatible(top, newTop);
        Relink(top, newTop);
        return new Relinked(new CopyStats(0, 0), newTop.Path, "identity", SealFor(newTop));
    }
}
