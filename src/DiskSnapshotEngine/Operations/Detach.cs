using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Operations;

/// <summary>What a detach did.</summary>
/// <param name="Image">The image, now a base image.</param>
/// <param name="FormerParents">The chain it read through, nearest first (left unchanged); empty when the image was already independent.</param>
/// <param name="Stats">Bytes copied in from the parents.</param>
public sealed record DetachResult(string Image, IReadOnlyList<string> FormerParents, CopyStats Stats);

/// <summary>
/// Detach: a linked clone becomes an independent base image in place (same path, same identity and version, so its own
/// children stay linked). Everything its parents show where it holds nothing is copied in, with the image reading the
/// same bytes throughout; only then does one atomic format step drop the parent link. A crash during the copy leaves a
/// working child holding part of its parents' data; running the command again copies the rest and finishes.
/// The parents are only read.
/// </summary>
public static class Detach
{
    /// <summary>Makes <paramref name="image"/> independent of its parents.</summary>
    /// <exception cref="DiskImageException">InvalidArgument (a base image; an interrupted other operation), Unsupported (a format without
    /// the in-place step), DiskFull (with the space needed), Cancelled, open and I/O errors.</exception>
    public static Task<DetachResult> RunAsync(string image, OpenOptions? options = null,
        IProgress<OperationProgress>? progress = null, CancellationToken cancel = default) =>
        RunAsync(image, options, guard: null, progress, cancel);

    /// <summary>
    /// Makes <paramref name="image"/> independent of its parents unless <paramref name="guard"/> protects one of them
    /// (<c>Snapshots.SnapshotMergeGuard</c>: a snapshot the image's catalog says it descends from).
    /// </summary>
    /// <exception cref="DiskImageException">As the overload without a guard; ReadOnly when the guard refuses, before any change.</exception>
    public static async Task<DetachResult> RunAsync(string image, OpenOptions? options, IMergeGuard? guard,
        IProgress<OperationProgress>? progress = null, CancellationToken cancel = default)
    {
        options ??= OpenOptions.ReadOnly;
        image = Path.GetFullPath(image);
        using var scope = LockScope.Begin();
        scope.Lock(image);
        // Detach keeps no journal (it resumes from the image itself): any journal recorded is another operation's.
        OperationJournal.LoadOwn(image, "detach");
        using var chain = ChainOpener.Open(image, options, 0);
        var top = chain.Top;
        // Nothing to do, or a run that was interrupted after its last step: either way the image is independent.
        if (top.ParentLink is null || chain.Layers.Count < 2)
            return new DetachResult(image, Array.Empty<string>(), new CopyStats(0, 0));
        if (top is not IParentDetachable detachable)
            throw new DiskImageException(ErrorKind.Unsupported,
                $"detaching a {top.Format.ToString().ToLowerInvariant()} image in place is not supported (VHDX and VDI are); make an independent copy with a full clone", image);

        // A parent the caller protects (a snapshot of the image's own catalog) must stay in its chain: cutting the link
        // would leave the catalog saying the current state descends from it, which no hypervisor's tree can show.
        var parents = chain.Layers.Skip(1).Select(l => l.Path).ToList();
        if (guard?.Refusal(parents, chain.Layers.SelectMany(l => Dependents.FoldersBeside(l.Path)).ToList()) is string refusal)
            throw new DiskImageException(ErrorKind.ReadOnly, $"cannot detach: {refusal}", image);

        var plan = chain.GetExtents(0, chain.VirtualSize)
            .Where(e => e.LayerIndex >= 1 && e.Kind == ExtentKind.Data)
            .Select(e => new CopyRange(e.Offset, e.Length)).ToList();
        long needed = plan.Sum(r => r.Length);
        DurableFiles.RequireFreeSpace(image, needed, "the detach");
        // The image receives exactly the bytes it already shows: its version stays and its children stay linked.
        top.PreserveVersionOnWrite = true;
        long written = 0;
        await ExtentPump.RunAsync(plan, ExtentPump.ChunkFor(top.BlockSize),
            (off, buf) => chain.Read(off, buf),
            (off, data, len, isZero) =>
            {
                // A zero run needs nothing: once detached, what the image does not hold reads as zeros.
                if (isZero) return;
                chain.Write(off, data);
                written += len;
            },
            done => progress?.Report(new OperationProgress("detaching", done, needed)), cancel).ConfigureAwait(false);
        // Data first, durable; only then the link goes, so a crash never leaves a base missing its parents' bytes.
        top.Flush();
        detachable.DetachFromParent();
        top.Flush();
        return new DetachResult(image, parents, new CopyStats(written, needed - written));
    }
}
