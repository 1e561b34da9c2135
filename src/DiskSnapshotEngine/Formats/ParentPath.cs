using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Formats;

/// <summary>
/// Where a child records its parent, one rule for every format (qcow2 backing file, VHDX and VHD parent locators, VDI
/// parent record): relative to the child's folder when the parent's folder is on the same file system, absolute
/// otherwise. A relative path keeps a chain working when a folder tree moves as one; one that climbs across a mount
/// point (<c>../../../mnt/x/golden.vhdx</c>) breaks as soon as either side is mounted elsewhere, where the absolute path
/// still names the parent. qemu-img records whatever string it is given; libvirt gives it absolute paths.
/// </summary>
internal static class ParentPath
{
    /// <summary>
    /// <paramref name="parentPath"/> relative to the folder of <paramref name="childPath"/> (OS separators), or null
    /// when the child must record the absolute path only: another drive or root, or another file system.
    /// </summary>
    public static string? Relative(string childPath, string parentPath)
    {
        string childDir = Path.GetDirectoryName(Path.GetFullPath(childPath)) ?? "/";
        string parent = Path.GetFullPath(parentPath);
        string rel = Path.GetRelativePath(childDir, parent);
        if (Path.IsPathRooted(rel)) return null;
        // The folders are compared, not the files: a parent that is a symbolic link in the child's folder stays
        // reachable by its relative name wherever the link points.
        string parentDir = Path.GetDirectoryName(parent) ?? "/";
        return OnSameFileSystem(childDir, parentDir) ? rel : null;
    }

    private static bool OnSameFileSystem(string a, string b)
    {
        if (!OperatingSystem.IsLinux()) return true;
        // A folder that cannot be examined gives no reason to prefer the absolute path: keep the relative one.
        if (Libc.Stat(a, out var sa) != 0 || Libc.Stat(b, out var sb) != 0) return true;
        return sa.Device == sb.Device;
    }
}
