using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Operations;

namespace DiskSnapshotEngine.Snapshots;

/// <summary>
/// Refuses a plain merge that would change or remove a snapshot's layer: only snapshot delete may do that, since it
/// also updates the catalog. Pass it as <see cref="MergeOptions.Guard"/> (the CLI's <c>dse merge</c> does).
/// </summary>
public sealed class SnapshotMergeGuard : IMergeGuard
{
    /// <summary>The guard (it holds no state).</summary>
    public static SnapshotMergeGuard Instance { get; } = new();

    private SnapshotMergeGuard() { }

    /// <inheritdoc />
    public string? Refusal(IReadOnlyList<string> layers, IReadOnlyList<string> folders)
    {
        var named = SnapshotLayers(folders);
        var hit = layers.Where(named.ContainsKey).Select(l => $"{l} is snapshot '{named[l]}'").ToList();
        return hit.Count == 0 ? null : $"{string.Join("; ", hit)}; use 'dse snapshot delete' so that the catalog stays right";
    }

    // Layer file -> snapshot name, from every snapshot catalog in the folders.
    private static Dictionary<string, string> SnapshotLayers(IEnumerable<string> folders)
    {
        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var folder in folders.Distinct())
        {
            IEnumerable<string> catalogs;
            try { catalogs = Directory.EnumerateFiles(folder, "*" + SnapshotCatalog.Suffix).ToList(); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { continue; }
            foreach (var file in catalogs)
            {
                string disk = file[..^SnapshotCatalog.Suffix.Length];
                try
                {
                    foreach (var s in SnapshotCatalog.Load(disk).Snapshots)
                        map[Path.Combine(folder, s.File)] = s.Name;
                }
                catch (DiskImageException) { }
            }
        }
        return map;
    }
}
