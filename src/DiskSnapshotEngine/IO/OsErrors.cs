using System.Runtime.InteropServices;
using DiskSnapshotEngine.Errors;

namespace DiskSnapshotEngine.IO;

/// <summary>Maps what the operating system reports (an exception from .NET, or an errno from libc) to the engine's error kinds.</summary>
internal static class OsErrors
{
    /// <summary>True for "no space left" (ENOSPC, EDQUOT on Unix; ERROR_HANDLE_DISK_FULL, ERROR_DISK_FULL on Windows).</summary>
    public static bool IsDiskFull(int code) => OperatingSystem.IsWindows() ? code is 39 or 112 : code is Libc.ENOSPC or Libc.EDQUOT;

    /// <summary>An exception thrown by a .NET file API.</summary>
    public static DiskImageException Translate(Exception e, string path, string operation)
    {
        if (e is DiskImageException d) return d;
        int code = e.HResult & 0xFFFF;
        if (IsDiskFull(code) || e.Message.Contains("No space left", StringComparison.OrdinalIgnoreCase))
            return new DiskImageException(ErrorKind.DiskFull, $"cannot {operation}: no space left on the device", path, inner: e);
        // ERROR_SHARING_VIOLATION (32) / ERROR_LOCK_VIOLATION (33) is what .NET reports for a failed flock.
        if (code is 32 or 33 || e.Message.Contains("being used by another process", StringComparison.OrdinalIgnoreCase))
        {
            string holders = LockHolders.Describe(path);
            string who = holders.Length > 0 ? holders
                : operation.Contains("writ") ? "another process is reading or writing it" : "another process is writing it";
            return new DiskImageException(ErrorKind.Locked, $"cannot {operation}: the file is locked, {who}", path, inner: e);
        }
        if (e is FileNotFoundException or DirectoryNotFoundException)
            return new DiskImageException(ErrorKind.FileNotFound, $"cannot {operation}: the file does not exist", path, inner: e);
        // .NET reports EROFS as a plain IOException carrying the errno.
        if (!OperatingSystem.IsWindows() && code == Libc.EROFS) return FromErrno(Libc.EROFS, path, operation);
        if (e is UnauthorizedAccessException)
            return FromErrno(Libc.EACCES, path, operation);
        return new DiskImageException(ErrorKind.Io, $"cannot {operation}: {e.Message}", path, inner: e);
    }

    private static bool IsWrite(string operation) => operation.Contains("writ", StringComparison.Ordinal);

    /// <summary>An errno left by a failed libc call.</summary>
    public static DiskImageException FromErrno(int errno, string path, string operation) => errno switch
    {
        Libc.ENOSPC or Libc.EDQUOT => new DiskImageException(ErrorKind.DiskFull, $"cannot {operation}: no space left on the device", path),
        Libc.ENOENT or Libc.ENOTDIR => new DiskImageException(ErrorKind.FileNotFound, $"cannot {operation}: the file does not exist", path),
        Libc.EEXIST => new DiskImageException(ErrorKind.AlreadyExists, $"cannot {operation}: the file already exists; refusing to overwrite it", path),
        Libc.EROFS => new DiskImageException(ErrorKind.ReadOnly, $"cannot {operation}: the file system is read-only", path),
        // Refused write access to the image itself is a read-only image; refused access otherwise is an I/O error.
        Libc.EACCES or Libc.EPERM when IsWrite(operation) => new DiskImageException(ErrorKind.ReadOnly, $"cannot {operation}: permission denied (the file is read-only for this user)", path),
        Libc.EACCES or Libc.EPERM => new DiskImageException(ErrorKind.Io, $"cannot {operation}: permission denied", path),
        _ => new DiskImageException(ErrorKind.Io, $"cannot {operation}: {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})", path),
    };
}
