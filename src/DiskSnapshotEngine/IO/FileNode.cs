using System.Runtime.InteropServices;
using DiskSnapshotEngine.Errors;

namespace DiskSnapshotEngine.IO;

/// <summary>
/// What a path names before we open it. Opening a FIFO blocks until a writer appears and a device node can be
/// endless, so a path is checked with stat(2) first and anything but a regular file is refused with its path.
/// The (device, inode) pair also identifies a file independent of how its path is spelled, which is how parent
/// chains detect that they loop back to a file already in the chain.
/// </summary>
internal readonly record struct FileNode(ulong Device, ulong Inode, string FullPath)
{
    private const int S_IFMT = 0xF000, S_IFREG = 0x8000, S_IFDIR = 0x4000, S_IFIFO = 0x1000, S_IFCHR = 0x2000, S_IFBLK = 0x6000, S_IFSOCK = 0xC000;

    /// <summary>Stats <paramref name="path"/> and returns its identity; throws when it is missing or not a regular file.</summary>
    /// <param name="path">The path to check.</param>
    /// <param name="role">What the file is for ("image", "parent image"), used in the error.</param>
    /// <exception cref="DiskImageException">Kind FileNotFound for a missing path, a FIFO, a device, a socket, a directory or a symlink loop.</exception>
    public static FileNode Of(string path, string role = "image")
    {
        string full;
        try { full = System.IO.Path.GetFullPath(path); }
        catch (ArgumentException)
        {
            throw new DiskImageException(ErrorKind.FileNotFound, $"the {role} path is not a valid path", path.Replace('\0', '?'));
        }
        if (!OperatingSystem.IsLinux())
        {
            if (Directory.Exists(full))
                throw new DiskImageException(ErrorKind.FileNotFound, $"the {role} path is a directory, not a file", full);
            if (!File.Exists(full))
                throw new DiskImageException(ErrorKind.FileNotFound, $"the {role} file does not exist", full);
            return new FileNode(0, (ulong)StringComparer.OrdinalIgnoreCase.GetHashCode(full), full);
        }

        if (Libc.Stat(full, out var st) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            string why = errno switch
            {
                Libc.ENOENT or Libc.ENOTDIR => "does not exist",
                Libc.ELOOP => "is a symbolic-link loop",
                Libc.EACCES => "is not accessible (permission denied)",
                _ => $"cannot be examined (errno {errno})",
            };
            throw new DiskImageException(ErrorKind.FileNotFound, $"the {role} path {why}", full);
        }
        int mode = (int)st.Mode;
        int type = mode & S_IFMT;
        if (type != S_IFREG)
        {
            string what = type switch
            {
                S_IFDIR => "a directory",
                S_IFIFO => "a FIFO (named pipe)",
                S_IFCHR => "a character device",
                S_IFBLK => "a block device",
                S_IFSOCK => "a socket",
                _ => "not a regular file",
            };
            throw new DiskImageException(ErrorKind.FileNotFound, $"the {role} path is {what}, not a regular file", full);
        }
        return new FileNode(st.Device, st.Inode, full);
    }

    /// <summary>
    /// Why this process may not write the file at <paramref name="path"/>, in words for a message ("the file system is
    /// read-only", ...), or null when it may (or when the OS does not say: elsewhere than Linux).
    /// </summary>
    public static string? WhyNotWritable(string path)
    {
        // A write through a link the kernel's fs.protected_symlinks rule would not follow is dse's refusal (Target),
        // whatever the sysctl says: for a caller that may skip the write, the same "may not write it" as a mode.
        if (WhyNotFollowable(path) is { } link) return link;
        if (!OperatingSystem.IsLinux() || Libc.FAccessAt(Libc.AT_FDCWD, path, Libc.W_OK, Libc.AT_EACCESS) == 0) return null;
        return System.Runtime.InteropServices.Marshal.GetLastPInvokeError() switch
        {
            Libc.EROFS => "the file system is read-only",
            Libc.EACCES => DeniedByMode(path),
            Libc.EPERM => "the file may not be written (immutable attribute or a security policy)",
            _ => null,
        };
    }

    /// <summary>
    /// Who may read the file at <paramref name="path"/> without being allowed to write it, by its mode, in words for a
    /// message ("mode 0644 in folders others can enter"), or null when nobody: group-readable requires group-writable,
    /// other-readable requires other-writable, unless a folder on its way lets no one else search it
    /// (<see cref="FolderAccess.ClosedToOthers"/>). A POSIX access ACL, a mode that cannot be read, or a system without
    /// modes (Windows) counts as "not private" (conservative). Such readers may make linked clones of the file that
    /// cannot record themselves in it.
    /// </summary>
    public static string? ReadableByNonWriters(string path)
    {
        if (!OperatingSystem.IsLinux()) return "permissions this system does not show as modes";
        // One canonical path for the mode, the ACL (lgetxattr does not follow links) and the folders on the way, so
        // all three describe the same file.
        if (Canonical(path) is not { } file || Libc.Stat(file, out var st) != 0) return "a mode that cannot be read";
        int mode = (int)st.Mode & 0xFFF;
        const int groupRead = 0x20, groupWrite = 0x10, otherRead = 0x4, otherWrite = 0x2; // 040, 020, 004, 002
        string bits = ModeText(st.Mode);
        byte none = 0;
        string? who = (mode & groupRead) != 0 && (mode & groupWrite) == 0 || (mode & otherRead) != 0 && (mode & otherWrite) == 0 ? bits
            : Libc.GetXattr(file, "system.posix_acl_access", ref none, 0) >= 0 ? $"{bits} and a POSIX ACL" : null;
        return who is null || FolderAccess.ClosedToOthers(file, st.Uid) ? null : $"{who} in folders others can enter";
    }

    /// <summary>The canonical absolute path of <paramref name="path"/> (realpath(3): every link resolved), or null when it cannot be resolved.</summary>
    public static string? Canonical(string path)
    {
        if (!OperatingSystem.IsLinux()) return null;
        nint resolved = Libc.RealPath(path, 0);
        if (resolved == 0) return null;
        try { return Marshal.PtrToStringUTF8(resolved); }
        finally { Libc.Free(resolved); }
    }

    // Who may write it instead: the owner and the mode, which root's lab goldens (0644) deny other users by.
    private static string DeniedByMode(string path) =>
        Libc.Stat(path, out var st) == 0
            ? $"its owner {UserName(st.Uid)} and {ModeText(st.Mode)} do not let this user write it"
            : "this user may not write it";

    // A file's permission bits as ls and chmod write them: "mode 0644".
    private static string ModeText(uint mode) => $"mode {Convert.ToString(mode & 0xFFF, 8).PadLeft(4, '0')}";

    // The account name of a uid from /etc/passwd ("uid N" when it has none there).
    private static string UserName(uint uid)
    {
        string id = uid.ToString(System.Globalization.CultureInfo.InvariantCulture);
        try
        {
            foreach (var line in File.ReadLines("/etc/passwd"))
                if (line.Split(':') is [var name, _, var u, ..] && u == id) return name;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        return "uid " + id;
    }

    /// <summary>
    /// The full path of the file <paramref name="path"/> finally names, its symbolic links followed: a verb that
    /// replaces an image (or writes an output) renames a new file over the target, so a link (a disk kept on a bigger
    /// mount and linked into the hypervisor's folder) stays a link to the new file. A path that is no link, or one that
    /// cannot be followed (a loop), is returned as given: opening it then says why. Every place that follows a
    /// user-given link before writing goes through here, because the rename does not pass the kernel's check.
    /// </summary>
    /// <exception cref="DiskImageException">ReadOnly: a link the kernel's fs.protected_symlinks would not follow.</exception>
    public static string Target(string path)
    {
        string full = System.IO.Path.GetFullPath(path);
        for (int hop = 0; hop < MaxLinkHops && LinkTargetOf(full) is string link; hop++)
        {
            RefuseUnprotectedLink(full);
            full = System.IO.Path.GetFullPath(link, System.IO.Path.GetDirectoryName(full)!);
        }
        return full;
    }

    /// <summary>
    /// Why <see cref="Target"/> refuses to follow <paramref name="path"/>'s links (a link fs.protected_symlinks would not
    /// follow), naming the link, or null when it follows them (or the path is no link).
    /// </summary>
    public static string? WhyNotFollowable(string path)
    {
        try
        {
            Target(path);
            return null;
        }
        catch (DiskImageException e) when (e.Kind == ErrorKind.ReadOnly)
        {
            return $"{e.Detail}: {e.Path}";
        }
    }

    // Linux's limit on the links followed in one path lookup (MAXSYMLINKS).
    private const int MaxLinkHops = 40;

    // The rule of fs.protected_symlinks (Documentation/admin-guide/sysctl/fs.rst), applied by us since rename(2) over a
    // link's target is our own following, not open(2)'s: in a sticky world-writable folder a link is followed only when
    // it is owned by the user following it or by the folder's owner; another user's link there could aim anywhere.
    private static void RefuseUnprotectedLink(string link)
    {
        if (!OperatingSystem.IsLinux()) return;
        const uint sticky = 0x200, otherWrite = 0x2; // 01000, 0002
        string folder = System.IO.Path.GetDirectoryName(link)!;
        if (Libc.Stat(folder, out var dir) != 0 || (dir.Mode & sticky) == 0 || (dir.Mode & otherWrite) == 0) return;
        if (Libc.LStat(link, out var st) == 0 && (st.Uid == Libc.GetEuid() || st.Uid == dir.Uid)) return;
        throw new DiskImageException(ErrorKind.ReadOnly,
            "the symbolic link is in a sticky world-writable folder and owned by neither this user nor the folder's owner; refusing to follow it (fs.protected_symlinks)", link);
    }

    /// <summary>The target a symbolic link at <paramref name="path"/> names (as written in the link), or null when the path is no link.</summary>
    public static string? LinkTargetOf(string path)
    {
        try { return new FileInfo(path).LinkTarget; }
        catch (IOException) { return null; }
    }

    /// <summary>True when the path exists and is a regular file (no exception).</summary>
    public static bool IsRegularFile(string path)
    {
        try { Of(path); return true; }
        catch (DiskImageException) { return false; }
    }

    /// <summary>True when the path names a unix domain socket (a server's listening socket, live or left behind).</summary>
    public static bool IsSocket(string path)
    {
        if (!OperatingSystem.IsLinux()) return false;
        return Libc.Stat(path, out var st) == 0 && ((int)st.Mode & S_IFMT) == S_IFSOCK;
    }

    /// <summary>Same file, whatever the spelling of the path.</summary>
    public bool SameFileAs(FileNode other) =>
        OperatingSystem.IsLinux() ? Device == other.Device && Inode == other.Inode
                                  : string.Equals(FullPath, other.FullPath, StringComparison.OrdinalIgnoreCase);
}
