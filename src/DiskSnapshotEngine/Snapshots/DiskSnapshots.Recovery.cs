using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Operations;

namespace DiskSnapshotEngine.Snapshots;

// Recovery: an operation the catalog records as pending is finished by the next snapshot command on the disk.
public static partial class DiskSnapshots
{
    private static SnapshotCatalog FinishPending(string disk, OpenOptions options)
    {
        var catalog = SnapshotCatalog.Load(disk);
        if (catalog.Pending is null) return catalog;
        if (catalog.Pending.Operation == "delete")
        {
            // Finishing a delete moves data; only DeleteAsync (and the async path below) may do that.
            throw new DiskImageException(ErrorKind.InvalidArgument,
                $"an interrupted delete of snapshot '{catalog.Pending.Snapshot.Name}' must be finished first: run 'dse snapshot delete' with that name again", disk);
        }
        return FinishSimple(disk, catalog, options);
    }

    // Also returns the links a finished delete removed or left, so that rerunning that delete can report them.
    private static async Task<(SnapshotCatalog Catalog, SnapshotDeleteResult Finished)> FinishPendingAsync(string disk, OpenOptions options, IProgress<OperationProgress>? progress, CancellationToken cancel)
    {
        var catalog = SnapshotCatalog.Load(disk);
        if (catalog.Pending is null) return (catalog, SnapshotDeleteResult.None);
        if (catalog.Pending.Operation == "delete")
        {
            var finished = await FinishDeleteAsync(disk, catalog, options, progress, cancel).ConfigureAwait(false);
            return (SnapshotCatalog.Load(disk), finished);
        }
        return (FinishSimple(disk, catalog, options), SnapshotDeleteResult.None);
    }

    private static SnapshotCatalog FinishSimple(string disk, SnapshotCatalog catalog, OpenOptions options)
    {
        var pending = catalog.Pending!;
        if (pending.Operation == "create") FinishCreate(disk, catalog, pending.Snapshot, options);
        else if (pending.Operation == "revert") FinishRevert(disk, catalog, pending.Snapshot, options);
        return SnapshotCatalog.Load(disk);
    }
}
