namespace DiskSnapshotEngine.Block;

/// <summary>A layer that can fix its own metadata inconsistencies that never touch content (<c>dse check --repair</c>).</summary>
public interface IRepairable
{
    /// <summary>
    /// Fixes what is safe to fix in the layer's metadata (a stale or damaged header copy, a header count that lags
    /// the map), durably; returns one line per change, empty when there was nothing to do. Never changes what the disk reads.
    /// </summary>
    /// <exception cref="Errors.DiskImageException">ReadOnly, Io.</exception>
    IReadOnlyList<string> RepairMetadata();
}
