using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Formats;

namespace DiskSnapshotEngine.Operations;

/// <summary>
/// Linked clone: a new, empty differencing child that reads through its parent and takes every write itself
/// (copy-on-write). Constant time: only the parent's headers are read. The parent's content is never written: the
/// parent is sealed (<see cref="SealReasons.Golden"/>) so that no dse verb changes it while the clone reads
/// through it, wherever the clone lives. A parent this process cannot write (a read-only file system, a mode that denies
/// the user, an immutable file; see <see cref="Seals.WhyNotWritable"/>) is left unsealed: it cannot change through this
/// process anyway, and every verb that would write it fails (ReadOnly). Open the clone with <see cref="DiskImage.Open(string, OpenOptions)"/>.
/// </summary>
public static class LinkedClone
{
    /// <summary>Creates <paramref name="image"/> as a linked clone of <paramref name="parent"/>, durably.</summary>
    /// <param name="parent">The image the clone reads through (any supported format).</param>
    /// <param name="image">The new clone's path; its extension names the format unless <paramref name="format"/> does.</param>
    /// <param name="format">The clone's format (VHDX, VDI, VHD, qcow2; a format that cannot be a child of the parent is refused).</param>
    /// <returns>The parent and what became of its seal (sealed; or left as it was, and why), for the caller to tell the user.</returns>
    /// <exception cref="DiskImageException">InvalidArgument, AlreadyExists, FileNotFound, Unsupported, Locked (the
    /// parent's seal must change but another process has it open), DiskFull, Io.</exception>
    public static ParentSeal Create(string parent, string image, ImageFormat? format = null)
    {
        using var child = DiskImage.CreateDifferencing(image, parent, format, null, SealReasons.Golden, out var parentSeal);
        child.Flush();
        return parentSeal;
    }
}
