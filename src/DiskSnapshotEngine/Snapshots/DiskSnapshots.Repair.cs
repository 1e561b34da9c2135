using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;
using DiskSnapshotEngine.Operations;

namespace DiskSnapshotEngine.Snapshots;

/// <summary>Result of a repair.</summary>
/// <param name="Catalog">The rebuilt catalog (already saved).</param>
/// <param name="Problems">What was found wrong and not fixable here (an image whose parent cannot be opened).</param>
public sealed record RepairResult(SnapshotCatalog Catalog, IReadOnlyList<CheckProblem> Problems)
{
    /// <summary>True when some image or chain does not open: the catalog was rebuilt, but not everything is readable.</summary>
    public bool HasErrors => Problems.Any(p => p.Severity == CheckSeverity.Error);
}

// Repair: rebuilds a disk's catalog from its images.
public static partial class DiskSnapshots
{
    /// <summary>
    /// Rebuilds the catalog from the images alone: every <c>STEM.snap-*.EXT</c> beside the disk is a snapshot, the
    /// tree follows the parent links, names and descriptions are kept from the old catalog where it is readable, and
    /// every image's whole chain is opened to verify that it links its parent.
    /// </summary>
    public static RepairResult Repair(string disk, OpenOptions? options = null)
    {
        options ??= OpenOptions.ReadOnly;
        disk = Path.GetFullPath(disk);
        // A disk whose file is missing (a create cut between its rename steps where links are unavailable) is
        // repaired without a lock on it: there is no file to hold.
        RefuseLink(disk);
        using var scope = LockScope.Begin();
        scope.LockIfExists(disk);
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
}
