using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Formats;

/// <summary>A format whose images hold internal snapshots (qcow2) that can be read as the disk was at each of them.</summary>
internal interface IInternalSnapshotDriver
{
    /// <summary>
    /// Opens, read-only, the image as it was at the internal snapshot <paramref name="snapshot"/> (its id, or else its
    /// name). Takes ownership of <paramref name="file"/> on success only.
    /// </summary>
    /// <exception cref="Errors.DiskImageException">InvalidArgument when no snapshot matches; the errors of an open.</exception>
    IDiskLayer OpenInternalSnapshot(IImageFile file, string snapshot);
}
