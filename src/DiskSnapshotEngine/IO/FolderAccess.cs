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
        return Marshal.GetLastPInvokeError() switch
        {
            Libc.EACCES => "not writable by this user",
            Libc.EROFS => "on a read-only file system",
            Libc.EPERM => "not writable (an immutable attribute or a security policy)",
            _ => null,
        };
    }

    /// <summary>
    /// Refuses to <paramref name="action"/> (for example "compact it") when this user may not create files in the folder
    /// of <paramref name="path"/>; <paramref name="why"/> says why the verb writes there, when the user could not know.
    /// </summary>
    /// <exception cref="DiskImageException">ReadOnly naming <paramref name="path"/> and its folder.</exception>
    public static void Require(string path, string action, string? why = null)
    {
        string full = Path.GetFullPath(path);
        string folder = Path.GetDirectoryName(full) ?? "/";
        if (WhyNotWritable(folder) is string reason)
            throw new DiskImageException(ErrorKind.ReadOnly,
                $"cannot {action}: its folder {folder} is {reason}{(why is null ? "" : $" ({why})")}", full);
    }
}
