using System.Runtime.InteropServices;
using DiskSnapshotEngine.Errors;
using Microsoft.Win32.SafeHandles;

namespace DiskSnapshotEngine.IO;

/// <summary>How an open image file is locked against other processes.</summary>
public enum FileLockMode
{
    /// <summary>A reader: readers share; writers (dse or QEMU) are refused, and refuse it.</summary>
    Shared,

    /// <summary>A writer: nobody else may read or write the file while it is open.</summary>
    Exclusive,

    /// <summary>
    /// Reads whatever another process is doing, like qemu-img's -U (force share): no dse lock is taken and only
    /// QEMU's "consistent read" byte is held; the content read may be inconsistent while someone writes.
    /// </summary>
    ForceShare,
}

/// <summary>
/// Takes the two locks every dse open holds on Linux, on the open file description (so each open is its own
/// holder, even within one process):
/// <list type="bullet">
/// <item>flock(2), dse against dse: shared for readers (readers never block readers), exclusive for writers.</item>
/// <item>QEMU's permission bytes (<see cref="QemuPermissionLocks"/>), so QEMU and libvirt see dse and dse sees them.</item>
/// </list>
/// A conflict fails at once (exit 12) and names the holder; nothing ever waits for a lock.
/// </summary>
internal static class FileLock
{
    /// <summary>Locks <paramref name="handle"/> (an open descriptor of <paramref name="path"/>) for <paramref name="mode"/>.</summary>
    /// <exception cref="DiskImageException">Locked, naming the processes that hold the file.</exception>
    public static void Acquire(SafeFileHandle handle, string path, FileLockMode mode, string operation)
    {
        // A conflict whose holder cannot be found any more was held by a process that has just let go (or exited):
        // try again a few times rather than report a lock nobody holds.
        for (int attempt = 1; ; attempt++)
        {
            string? conflict = TryAcquire(handle, mode);
            if (conflict is null) return;
            // What we took before the conflict showed (the flock, some QEMU bytes) is dropped first, so that the
            // holders listed are the others only.
            Unlock(handle);
            string holders = LockHolders.Describe(path);
            if (holders.Length > 0 || attempt == 3)
                throw new DiskImageException(ErrorKind.Locked,
                    $"cannot {operation}: the file is locked, {(holders.Length > 0 ? holders : conflict)}", path);
            Thread.Sleep(20);
        }
    }

    /// <summary>
    /// Gives up the locks and closes the descriptor. The locks belong to the open file description, which a child
    /// process forked by another thread (Process.Start) shares until its exec closes our O_CLOEXEC descriptors:
    /// closing alone would leave the locks held for that moment, and our own next open of the file would conflict
    /// with them. Unlocking first ends them at once (.NET's own SafeFileHandle unlocks its flock the same way).
    /// </summary>
    public static void ReleaseAndClose(SafeFileHandle handle)
    {
        Unlock(handle);
        handle.Dispose();
    }

    private static void Unlock(SafeFileHandle handle)
    {
        if (!OperatingSystem.IsLinux() || handle.IsClosed || handle.IsInvalid) return;
        bool added = false;
        try
        {
            handle.DangerousAddRef(ref added);
            int fd = (int)handle.DangerousGetHandle();
            _ = Libc.Flock(fd, Libc.LOCK_UN);
            QemuPermissionLocks.Release(fd);
        }
        catch (ObjectDisposedException) { }
        finally
        {
            if (added) handle.DangerousRelease();
        }
    }

    // null on success; otherwise what conflicts, in words.
    private static string? TryAcquire(SafeFileHandle handle, FileLockMode mode)
    {
        if (mode != FileLockMode.ForceShare)
        {
            int op = (mode == FileLockMode.Exclusive ? Libc.LOCK_EX : Libc.LOCK_SH) | Libc.LOCK_NB;
            bool added = false;
            try
            {
                handle.DangerousAddRef(ref added);
                if (Libc.Flock((int)handle.DangerousGetHandle(), op) != 0)
                {
                    int errno = Marshal.GetLastPInvokeError();
                    // EWOULDBLOCK (= EAGAIN): held; anything else (ENOLCK, EINVAL on a file system without flock)
                    // leaves the file as unlocked by flock as .NET would have left it.
                    if (errno == Libc.EAGAIN)
                        return mode == FileLockMode.Exclusive ? "another process is reading or writing it" : "another process is writing it";
                }
            }
            finally
            {
                if (added) handle.DangerousRelease();
            }
        }
        return QemuPermissionLocks.Apply(handle, mode)?.ToString();
    }
}
