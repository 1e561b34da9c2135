using DiskSnapshotEngine.Errors;

namespace DiskSnapshotEngine.Formats.Qcow2;

/// <summary>
/// qemu's metadata overlap check, as the write path needs it: before the first change every L2 table and refcount
/// block has a cluster of its own, and no guest write goes in place to a host cluster that holds one of them (guest
/// data would overwrite the metadata). Either is a corrupt image, refused before anything is written.
/// </summary>
internal sealed partial class Qcow2Layer
{
    // Once, before the first change (BeginWrite): the tables must not overlap one another.
    private void CheckMetadataDistinct()
    {
        _tables.CheckL2TablesDistinct();
        Refcounts.CheckBlocksDistinct(_tables.IsL2Table);
    }

    // Before a write in place to the host cluster that guest cluster <paramref name="cluster"/> maps.
    private void CheckNotMetadata(long cluster, long host)
    {
        if (_tables.IsL2Table(host) || Refcounts.IsBlock(host))
            throw new DiskImageException(ErrorKind.CorruptImage,
                $"guest cluster {cluster} maps host cluster {host}, which holds {(_tables.IsL2Table(host) ? "an L2 table" : "a refcount block")}: a write there would overwrite it",
                Path, "L2 table", _tables.EntryOffset(cluster));
    }
}
