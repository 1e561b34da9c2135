using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Operations;

/// <summary>What a repair did.</summary>
/// <param name="Image">The repaired image (its own layer; parents are never written).</param>
/// <param name="Fixed">The problems that were found and are gone, as check words them.</param>
/// <param name="Remaining">The problems still there.</param>
public sealed record RepairResult(string Image, IReadOnlyList<CheckProblem> Fixed, IReadOnlyList<CheckProblem> Remaining);

/// <summary>
/// check --repair: fixes in the image's own layer what is safe to fix and never changes what the disk reads: a dirty
/// VHDX log is replayed into the file (the read-write open does it), an invalid header or region table copy is
/// rewritten from the valid one, a VHD footer missing or damaged at the end of the file is written back there from its
/// copy at offset 0, a dynamic or differencing VHD's copy at offset 0 that is missing, damaged or stale is rewritten from
/// a valid footer at the end (not for a 511-byte footer), a VDI cBlocksAllocated lagging its map is raised, and leaked
/// space is reclaimed by a
/// compact (a rewrite beside the image, renamed over it, identity kept). An image with errors is left untouched:
/// repairing them could change content.
/// </summary>
public static class Repair
{
    /// <summary>Repairs <paramref name="image"/>.</summary>
    /// <exception cref="DiskImageException">Locked, open and I/O errors; Cancelled.</exception>
    public static async Task<RepairResult> RunAsync(string image, OpenOptions? options = null, CancellationToken cancel = default)
    {
        options ??= OpenOptions.ReadOnly;
        image = Path.GetFullPath(image);
        using var scope = LockScope.Begin();
        scope.Lock(image);
        var before = CheckLayer(image, options);
        if (before.Problems.Any(p => p.Severity == CheckSeverity.Error && !IsHeaderCount(p)))
            return new RepairResult(image, Array.Empty<CheckProblem>(), before.Problems);
        if (!before.IsClean)
        {
            using var layer = DiskImage.OpenLayer(image, writable: true, options.FileOpener);
            if (layer is IRepairable r) r.RepairMetadata();
            layer.Flush();
        }
        var middle = CheckLayer(image, options);
        if (middle.Problems.Any(p => p.Severity == CheckSeverity.Leak))
        {
            try { await Compact.RunAsync(image, options, null, cancel).ConfigureAwait(false); }
            catch (DiskImageException e) when (e.Kind == ErrorKind.Unsupported) { } // the leak stays listed
        }
        var after = CheckLayer(image, options);
        var still = after.Problems.Select(Key).ToHashSet();
        return new RepairResult(image, before.Problems.Where(p => !still.Contains(Key(p))).ToList(), after.Problems);
    }

    // A VDI cBlocksAllocated lagging its map is an error for other writers, but raising it changes no content.
    private static bool IsHeaderCount(CheckProblem p) =>
        p.Structure == "VDIHEADER1" && p.Message.StartsWith("cBlocksAllocated", StringComparison.Ordinal);

    private static string Key(CheckProblem p) => $"{p.Severity}|{p.Structure}|{p.FileOffset}|{p.Message}";

    private static CheckReport CheckLayer(string image, OpenOptions options)
    {
        using var layer = DiskImage.OpenLayer(image, writable: false, options.FileOpener);
        return layer.Check();
    }
}
