namespace DiskSnapshotEngine.Snapshots;

/// <summary>A snapshot as listed: the catalog entry plus facts read from its layer.</summary>
/// <param name="Entry">The catalog entry.</param>
/// <param name="Path">Full path of the layer file.</param>
/// <param name="FileSize">Size of the layer file in bytes (-1 when it is missing).</param>
/// <param name="IsCurrent">True when the current state was started from this snapshot.</param>
/// <param name="Depth">Depth in the tree (0 for a root), for display.</param>
public sealed record SnapshotInfo(SnapshotEntry Entry, string Path, long FileSize, bool IsCurrent, int Depth);
