namespace DiskSnapshotEngine.Tests.Infrastructure;

/// <summary>
/// The repository's top-level fixtures/ folder (fixtures/README.md): the reference images the project makes itself
/// (reference/, with reference/manifest.tsv) and shared.tsv, the manifest of the real images in ../shared/fixtures.
/// </summary>
public static class RepositoryFixtures
{
    /// <summary>The checkout's root (the folder holding DiskSnapshotEngine.sln), or null when the tests run outside one.</summary>
    public static string? RepositoryRoot { get; } = LocateRoot();

    /// <summary>fixtures/ of the checkout.</summary>
    public static string Directory =>
        Path.Combine(RepositoryRoot ?? throw new InvalidOperationException("the tests do not run inside a checkout"), "fixtures");

    private static string? LocateRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "DiskSnapshotEngine.sln")) || System.IO.Directory.Exists(Path.Combine(dir.FullName, ".git")))
                return dir.FullName;
        }
        return null;
    }

    /// <summary>Reads a tab-separated manifest: one row per image, keyed by the header line's column names.</summary>
    public static IReadOnlyList<IReadOnlyDictionary<string, string>> ReadManifest(string path)
    {
        var lines = File.ReadAllLines(path).Where(l => l.Length > 0).ToArray();
        var header = lines[0].Split('\t');
        var rows = new List<IReadOnlyDictionary<string, string>>();
        foreach (var line in lines.Skip(1))
        {
            var cells = line.Split('\t');
            Assert.True(cells.Length == header.Length, $"{path}: \"{line}\" has {cells.Length} columns, the header {header.Length}");
            rows.Add(header.Zip(cells).ToDictionary(p => p.First, p => p.Second));
        }
        return rows;
    }
}
