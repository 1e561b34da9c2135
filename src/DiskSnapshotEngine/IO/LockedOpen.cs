using System.Runtime.InteropServices;
using DiskSnapshotEngine.Errors;
using Microsoft.Win32.SafeHandles;

namespace DiskSnapshotEngine.IO;

/// <summary>
/// Opens and creates image files with their locks (<see cref="FileLock"/>). On Linux the descriptor is opened with
/// open(2) and locked by us, so that a force-share read takes no flock and a file the operation's
/// <see cref="LockScope"/> holds is opened without a second, conflicting lock. Elsewhere .NET's
/// <see cref="FileShare"/> does the locking (flock on Unix, share modes on Windows), as it always did.
/// </summary>
internal static class LockedOpen
{
    /// <summary>How many times an open is retried when the path was renamed over between the open and the lock.</summary>
    public const int ReplacedRetries = 8;

    /// <summary>Opens an existing regular file and locks it for <paramref name="mode"/>.</summary>
    /// <exception cref="DiskImageException">FileNotFound, Locked, Io.</exception>
    public static SafeFileHandle Open(string path, FileLockMode mode)
    {
        var node = FileNode.Of(path);
        string full = node.FullPath;
        bool writable = mode == FileLockMode.Exclusive;
        string operation = writable ? "open for writing" : "open for reading";
        if (!OperatingSystem.IsLinux()) return OpenPortable(full, mode, operation);
        for (int attempt = 0; attempt < ReplacedRetries; attempt++)
        {
            var handle = OpenDescriptor(full, writable);
            try
            {
                var st = StatOf(handle, full);
                if (!LockScope.Covers(st.Device, st.Inode, writable)) FileLock.Acquire(handle, full, mode, operation);
                // The lock protects the file the descriptor names; a snapshot or merge may have renamed another file
                // over the path meanwhile, and then it is that file which must be opened (and locked).
                if (StillNames(full, st))
                {
                    _ = Libc.PosixFadvise((int)handle.DangerousGetHandle(), 0, 0, Libc.POSIX_FADV_RANDOM);
                    return handle;
                }
            }
            catch
            {
                FileLock.ReleaseAndClose(handle);
                throw;
            }
            FileLock.ReleaseAndClose(handle);
        }
        throw KeptReplaced(full);
    }

    /// <summary>
    /// Creates a new file (never overwrites) and locks it exclusively; inside a <see cref="LockScope"/> the scope
    /// holds the lock instead (so it outlives this handle and follows the file through renames). <paramref name="mode"/>
    /// is given to open(2), which takes the umask from it (see <see cref="FileOwnership.CreateModeFor"/>).
    /// </summary>
    /// <remarks>
    /// <paramref name="named"/> is the file the user gave when <paramref name="full"/> is a temporary file beside it (a
    /// partial output, a rewrite's new image): refusals name that file, never the temporary one the user does not know.
    /// </remarks>
    /// <exception cref="DiskImageException">AlreadyExists, ReadOnly (the folder), DiskFull, FileNotFound (no such folder), Io.</exception>
    public static SafeFileHandle Create(string full, uint mode = FileOwnership.NewFileMode, string? named = null)
    {
        CheckCreatable(full, named);
        if (!OperatingSystem.IsLinux())
        {
            try { return File.OpenHandle(full, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, FileOptions.RandomAccess); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw OsErrors.Translate(e, full, "create"); }
        }
        int fd = Libc.Open(full, Libc.O_RDWR | Libc.O_CREAT | Libc.O_EXCL | Libc.O_CLOEXEC, (int)mode);
        if (fd < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            // Refused by the folder (its mode, a read-only mount, a policy): said as the verbs that check it up front say it.
            if (named is null) throw FolderAccess.Refused(full, "create it", errno) ?? OsErrors.FromErrno(errno, full, "create");
            // The folder that refused is the temporary file's (beside a link's target), named with the user's name.
            throw FolderAccess.Refused(full, "create its new file beside it", errno, named)
                ?? OsErrors.FromErrno(errno, Path.GetFullPath(named), $"create {Path.GetFileName(full)} beside it");
        }
        var handle = new SafeFileHandle(fd, ownsHandle: true);
        try
        {
            var st = StatOf(handle, full);
            if (LockScope.Current is { } scope) scope.Adopt(full, st);
            else FileLock.Acquire(handle, full, FileLockMode.Exclusive, "create");
            _ = Libc.PosixFadvise(fd, 0, 0, Libc.POSIX_FADV_RANDOM);
            return handle;
        }
        catch
        {
            FileLock.ReleaseAndClose(handle);
            try { File.Delete(full); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
            throw;
        }
    }

    /// <summary>
    /// Refuses a path that exists or whose folder does not, as <see cref="Create"/> does, naming <paramref name="named"/>
    /// (the file the user gave) for a temporary <paramref name="full"/>. A temporary file there is said to be one this
    /// user cannot remove only when that is so (its folder not writable, another user's in a sticky folder such as /tmp);
    /// otherwise it already exists (another run making it now, or one a crashed run left that the caller did not remove).
    /// </summary>
    /// <exception cref="DiskImageException">AlreadyExists, ReadOnly (a temporary file this user cannot remove), FileNotFound (no such folder).</exception>
    public static void CheckCreatable(string full, string? named)
    {
        string user = named is null ? full : Path.GetFullPath(named);
        string folder = Path.GetDirectoryName(full) ?? "/";
        if (File.Exists(full) || Directory.Exists(full))
        {
            if (named is null) throw new DiskImageException(ErrorKind.AlreadyExists, "the file already exists; refusing to overwrite it", full);
            string name = Path.GetFileName(full);
            if (FolderAccess.WhyNotRemovable(full) is { } why)
                throw new DiskImageException(ErrorKind.ReadOnly,
                    $"cannot create it: {name}, left in its folder {folder} by an earlier run, cannot be removed by this user ({why}); remove it or choose another name", user);
            throw new DiskImageException(ErrorKind.AlreadyExists,
                $"cannot create it: {name} already exists in its folder {folder} (another run may be making it now); refusing to overwrite it", user);
        }
        if (folder.Length > 0 && !Directory.Exists(folder))
            throw new DiskImageException(ErrorKind.FileNotFound, $"cannot create: the folder {folder} does not exist", user);
    }

    /// <summary>open(2) without any lock.</summary>
    public static SafeFileHandle OpenDescriptor(string full, bool writable)
    {
        int fd = Libc.Open(full, (writable ? Libc.O_RDWR : Libc.O_RDONLY) | Libc.O_CLOEXEC);
        if (fd < 0) throw OsErrors.FromErrno(Marshal.GetLastPInvokeError(), full, writable ? "open for writing" : "open for reading");
        return new SafeFileHandle(fd, ownsHandle: true);
    }

    /// <summary>fstat(2) of an open descriptor.</summary>
    public static Libc.StatInfo StatOf(SafeFileHandle handle, string path)
    {
        bool added = false;
        try
        {
            handle.DangerousAddRef(ref added);
            if (Libc.FStat((int)handle.DangerousGetHandle(), out var st) != 0)
                throw OsErrors.FromErrno(Marshal.GetLastPInvokeError(), path, "examine the open file");
            return st;
        }
        finally
        {
            if (added) handle.DangerousRelease();
        }
    }

    /// <summary>True when <paramref name="path"/> still names the file <paramref name="opened"/> describes.</summary>
    public static bool StillNames(string path, Libc.StatInfo opened) =>
        Libc.Stat(path, out var now) == 0 && now.Device == opened.Device && now.Inode == opened.Inode;

    /// <summary>The error when a path kept naming a new file at every attempt to lock it.</summary>
    public static DiskImageException KeptReplaced(string path) =>
        new(ErrorKind.Locked, "cannot lock the file: another process keeps replacing it", path);

    private static SafeFileHandle OpenPortable(string full, FileLockMode mode, string operation)
    {
        try
        {
            return File.OpenHandle(full, FileMode.Open,
                mode == FileLockMode.Exclusive ? FileAccess.ReadWrite : FileAccess.Read,
                mode switch
                {
                    FileLockMode.Exclusive => FileShare.None,
                    FileLockMode.Shared => FileShare.Read,
                    _ => FileShare.ReadWrite | FileShare.Delete,
                },
                FileOptions.RandomAccess);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw OsErrors.Translate(e, full, operation);
        }
    }
}
