using System.Runtime.InteropServices;
using DiskSnapshotEngine.Errors;

namespace DiskSnapshotEngine.IO;

/// <summary>
/// The folder a verb creates files in beside the file the user named: a rewrite's temporary image renamed over the
/// original (compact, resize, reset), a clone's or export's partial output, a snapshot's layer and catalog. When this
/// user may not create files there, the refusal names the file the user gave and its folder, up front, instead of the
/// temporary file whose creation would fail half-way.
/// </summary>
internal static class FolderAccess
{
    /// <summary>
    /// Why this process may not create files in <paramref name="folder"/> ("not writable by this user", ...), or null
    /// when it may, when the folder is missing (the create then says so) or when the OS does not say (not Linux).
    /// </summary>
    public static string? WhyNotWritable(string folder)
    {
        if (!OperatingSystem.IsLinux() || Libc.FAccessAt(Libc.AT_FDCWD, folder, Libc.W_OK | Libc.X_OK, Libc.AT_EACCESS) == 0) return null;
        return ReasonFor(Marshal.GetLastPInvokeError());
    }

    // What a refusal by the folder (its mode, its file system, a policy) says, or null for any other error.
    private static string? ReasonFor(int errno) => errno switch
    {
        Libc.EACCES => "not writable by this user",
        Libc.EROFS => "on a read-only file system",
        Libc.EPERM => "not writable (an immutable attribute or a security policy)",
        _ => null,
    };

    /// <summary>
    /// Why this user may not remove <paramref name="path"/> (unlink(2) needs a writable folder and, in a sticky folder
    /// such as /tmp, a file or folder of its own unless root), or null when it may or the OS does not say (not Linux).
    /// </summary>
    public static string? WhyNotRemovable(string path)
    {
        if (!OperatingSystem.IsLinux()) return null;
        string folder = Path.GetDirectoryName(Path.GetFullPath(path)) ?? "/";
        if (WhyNotWritable(folder) is string reason) return $"its folder is {reason}";
        const uint sticky = 0x200; // 01000
        uint me = Libc.GetEuid();
        if (me != 0 && Libc.Stat(folder, out var dir) == 0 && (dir.Mode & sticky) != 0 && dir.Uid != me
            && Libc.LStat(path, out var file) == 0 && file.Uid != me)
            return "it is another user's, in a sticky folder";
        return null;
    }

    /// <summary>
    /// Refuses to <paramref name="action"/> (for example "compact it") when this user may not create files in the folder
    /// of <paramref name="path"/>; <paramref name="why"/> says why the verb writes there, when the user could not know;
    /// <paramref name="named"/> is the name the user gave for it (a link to it), which the refusal names instead.
    /// </summary>
    /// <exception cref="DiskImageException">ReadOnly naming <paramref name="path"/> (or <paramref name="named"/>) and its folder.</exception>
    public static void Require(string path, string action, string? why = null, string? named = null)
    {
        string full = Path.GetFullPath(path);
        if (WhyNotWritable(FolderOf(full)) is string reason) throw Refusal(full, action, reason, why, named);
    }

    /// <summary>
    /// The refusal when creating a file beside <paramref name="path"/> failed with <paramref name="errno"/>, or null when
    /// the folder did not refuse it (another error). A check up front may have passed (a policy that access(2) does not
    /// consult, a folder changed meanwhile): the refusal names the folder that refused (that of <paramref name="path"/>)
    /// and <paramref name="named"/>, the file the user gave, when that is another name (a link to a file in that folder).
    /// </summary>
    public static DiskImageException? Refused(string path, string action, int errno, string? named = null)
    {
        string full = Path.GetFullPath(path);
        string? reason = WhyNotWritable(FolderOf(full)) ?? ReasonFor(errno);
        return reason is null ? null : Refusal(full, action, reason, named: named is null ? null : Path.GetFullPath(named));
    }

    // One line naming the file, its folder and why the folder refuses; the one message of every folder refusal.
    // A file reached through a link is named as given (named) with its target's folder.
    private static DiskImageException Refusal(string full, string action, string reason, string? why = null, string? named = null) =>
        new(ErrorKind.ReadOnly, $"cannot {action}: its folder {FolderOf(full)} is {reason}{(why is null ? "" : $" ({why})")}", named ?? full);

    private static string FolderOf(string full) => Path.GetDirectoryName(full) ?? "/";

    /// <summary>
    /// True when a folder on the way to <paramref name="file"/> (its canonical path, links resolved) lets no group
    /// and no other user search it (no g+x, no o+x, no POSIX access ACL, which counts as searchable) and belongs to
    /// <paramref name="owner"/> or root: then only they reach the file, whatever its own mode (a 0700 home or
    /// `mktemp -d` folder). False when every folder may be searched by someone else, or when it cannot be told.
    /// </summary>
    public static bool ClosedToOthers(string file, uint owner)
    {
        if (FileNode.Canonical(file) is not { } real) return false;
        const int groupSearch = 0x8, otherSearch = 0x1; // 010, 001
        byte none = 0;
        for (string? folder = Path.GetDirectoryName(real); !string.IsNullOrEmpty(folder); folder = Path.GetDirectoryName(folder))
        {
            if (Libc.Stat(folder, out var st) != 0) return false;
            if (((int)st.Mode & (groupSearch | otherSearch)) == 0 && (st.Uid == owner || st.Uid == 0)
                && Libc.GetXattr(folder, "system.posix_acl_access", ref none, 0) < 0)
                return true;
        }
        return false;
    }
}
