using System.Text.Json;
using System.Text.Json.Serialization;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Operations;

namespace DiskSnapshotEngine.Snapshots;

/// <summary>One snapshot as the catalog records it.</summary>
public sealed record SnapshotEntry
{
    /// <summary>Stable id (also part of the layer's file name).</summary>
    public required Guid Id { get; init; }
    /// <summary>Unique name given by the user.</summary>
    public required string Name { get; init; }
    /// <summary>Free text, or null.</summary>
    public string? Description { get; init; }
    /// <summary>When the snapshot was taken (UTC).</summary>
    public required DateTimeOffset Created { get; init; }
    /// <summary>File name of the frozen layer holding the snapshot's state, in the disk's folder.</summary>
    public required string File { get; init; }
    /// <summary>The snapshot this one was taken on top of, or null for a root.</summary>
    public Guid? Parent { get; init; }
}

/// <summary>An operation the catalog records before it starts, so that an interrupted one is finished by the next command.</summary>
public sealed record PendingSnapshotOperation
{
    /// <summary>"create", "revert" or "delete".</summary>
    public required string Operation { get; init; }
    /// <summary>The snapshot concerned (for create, the entry to add).</summary>
    public required SnapshotEntry Snapshot { get; init; }
    /// <summary>Delete: how the layer is removed ("remove", "pull", "commit").</summary>
    public string? Plan { get; init; }
    /// <summary>
    /// Delete: the layer's children (file paths) at planning time. Create: the disk's children that name it by
    /// path (VHDX linked clones), relinked to the snapshot layer before the disk's path gets the new current state.
    /// </summary>
    public string[] Children { get; init; } = Array.Empty<string>();
}

/// <summary>
/// The catalog of a disk's snapshots: names, descriptions, times, the tree, and which layer file is which snapshot.
/// Stored as JSON beside the disk (<c>DISK.snapshots.json</c>) and always replaced atomically.
/// </summary>
public sealed record SnapshotCatalog
{
    /// <summary>Catalog file name suffix.</summary>
    public const string Suffix = ".snapshots.json";

    /// <summary>Layout version of the file.</summary>
    public int FormatVersion { get; init; } = 1;
    /// <summary>File name of the disk (the current state), in its folder.</summary>
    public required string Disk { get; init; }
    /// <summary>Every snapshot.</summary>
    public List<SnapshotEntry> Snapshots { get; init; } = new();
    /// <summary>The snapshot the current state was started from (its parent layer), or null.</summary>
    public Guid? Current { get; init; }
    /// <summary>An operation that was started and not yet recorded as finished, or null.</summary>
    public PendingSnapshotOperation? Pending { get; init; }

    /// <summary>Path of the catalog of <paramref name="disk"/>.</summary>
    public static string PathFor(string disk) => Path.GetFullPath(disk) + Suffix;

    /// <summary>Loads the catalog of a disk; a disk without one has an empty catalog.</summary>
    /// <exception cref="DiskImageException">CorruptImage when the file is not a valid catalog (repair rebuilds it).</exception>
    public static SnapshotCatalog Load(string disk)
    {
        string path = PathFor(disk);
        if (!System.IO.File.Exists(path)) return new SnapshotCatalog { Disk = Path.GetFileName(disk) };
        try
        {
            var c = JsonSerializer.Deserialize(System.IO.File.ReadAllText(path), SnapshotCatalogJson.Default.SnapshotCatalog)
                ?? throw new JsonException("empty file");
            if (c.FormatVersion != 1) throw new JsonException($"unknown formatVersion {c.FormatVersion}");
            return c;
        }
        catch (Exception e) when (e is JsonException or NotSupportedException)
        {
            throw new DiskImageException(ErrorKind.CorruptImage,
                $"the snapshot catalog cannot be read ({e.Message}); 'dse snapshot repair' rebuilds it from the images", path, "snapshot catalog", inner: e);
        }
    }

    /// <summary>Writes the catalog atomically (temp file, fsync, rename, fsync of the folder).</summary>
    public void Save(string disk) => DurableFiles.WriteAllTextAtomic(PathFor(disk), JsonSerializer.Serialize(this, SnapshotCatalogJson.Default.SnapshotCatalog), like: Path.GetFullPath(disk));

    /// <summary>Serialises for <c>--json</c> output.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, SnapshotCatalogJson.Default.SnapshotCatalog);

    /// <summary>The snapshot named <paramref name="name"/>.</summary>
    /// <exception cref="DiskImageException">InvalidArgument listing the known names.</exception>
    public SnapshotEntry Find(string name, string disk) =>
        Snapshots.FirstOrDefault(s => s.Name == name)
        ?? throw new DiskImageException(ErrorKind.InvalidArgument,
            $"no snapshot named '{name}' (known: {(Snapshots.Count == 0 ? "none" : string.Join(", ", Snapshots.Select(s => s.Name)))})", disk);
}
