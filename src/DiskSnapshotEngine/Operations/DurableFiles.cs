using System.Runtime.InteropServices;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Operations;

/// <summary>
/// File-system steps whose ordering the crash-safety of every operation relies on. A rename or a new directory
/// entry is durable only once the directory itself is fsynced (POSIX), so each helper syncs the folder it changed.
/// The steps a caller's own files need (hypervisor settings, unit files) are public; the rest serve the operations.
/// </summary>
public static class DurableFiles
{
    /// <summary>
    /// Replaces <paramref name="path"/> with <paramref name="content"/> atomically: a reader (or a crash) sees
    /// either the old file or the new one, never a torn mix (temp file + fsync + rename + fsync of the folder).
    /// The new file takes the owner, mode and attributes of <paramref name="like"/> when given (the disk a catalog
    /// describes, as it is now), otherwise of the one it replaces.
    /// </summary>
    public static void WriteAllTextAtomic(string path, string content, string? like = null)
    {
        string temp = path + ".tmp-" + Environment.ProcessId;
        try
        {
            using (var fs = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None))
            {
                var bytes = System.Text.Encoding.UTF8.GetBytes(content);
                fs.Write(bytes);
                fs.Flush(flushToDisk: true);
            }
            // The file it sits beside decides (a catalog is as private as its disk, whatever the disk became since
            // the last save); without one, the file replaced keeps its own owner and mode.
            string? template = like is not null && File.Exists(like) ? like : File.Exists(path) ? path : null;
            if (template is not null) FileOwnership.Copy(template, temp);
            File.Move(temp, path, overwrite: true);
            SyncDirectoryOf(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            TryDelete(temp);
            throw ImageFile.Translate(e, path, "write");
        }
        catch (DiskImageException)
        {
            TryDelete(temp);
            throw;
        }
    }

    /// <summary>
    /// Atomically renames <paramref name="from"/> to <paramref name="to"/> (replacing it when asked) and syncs the
    /// folders. A file that replaces another first takes its owner, group, mode, ACLs and extended attributes, so that
    /// publishing a rewritten disk (compact, snapshot, merge) leaves it exactly as accessible as before.
    /// With <paramref name="syncFolders"/> false (an output the user asked not to sync) the folders are left to the page cache.
    /// </summary>
    internal static void Rename(string from, string to, bool overwrite, bool syncFolders = true)
    {
        if (overwrite && File.Exists(to)) FileOwnership.Copy(to, from);
        try { File.Move(from, to, overwrite); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw ImageFile.Translate(e, from, $"rename to {to}");
        }
        if (!syncFolders) return;
        SyncDirectoryOf(to);
        if (!SameDirectory(from, to)) SyncDirectoryOf(from);
    }

    /// <summary>
    /// Gives <paramref name="existing"/> a second name <paramref name="newName"/> (a hard link): the file exists under
    /// one name or both at every instant, which is what lets a snapshot take a disk's file without the disk's own path
    /// ever going missing. Falls back to a rename where hard links are not available.
    /// </summary>
    /// <returns>True when a hard link was made; false when the file was renamed instead.</returns>
    internal static bool LinkOrRename(string existing, string newName)
    {
        if (!OperatingSystem.IsWindows())
        {
            if (Libc.Link(existing, newName) == 0)
            {
                SyncDirectoryOf(newName);
                return true;
            }
            int errno = Marshal.GetLastPInvokeError();
            if (errno is Libc.EEXIST or Libc.ENOSPC or Libc.EDQUOT)
                throw OsErrors.FromErrno(errno, newName, "link");
        }
        Rename(existing, newName, overwrite: false);
        return false;
    }

    /// <summary>Deletes a file if it exists and makes the removal durable.</summary>
    internal static void Delete(string path)
    {
        if (!File.Exists(path)) return;
        try { File.Delete(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw ImageFile.Translate(e, path, "delete");
        }
        SyncDirectoryOf(path);
    }

    /// <summary>Removes the symbolic link at <paramref name="path"/> itself (never the file it names) and makes the removal durable.</summary>
    /// <exception cref="DiskImageException">ReadOnly (this user may not remove it), Io, naming the link.</exception>
    internal static void DeleteLink(string path)
    {
        try { File.Delete(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw ImageFile.Translate(e, path, "remove the link");
        }
        SyncDirectoryOf(path);
    }

    /// <summary>
    /// Closes a half-written output after a failure. Closing may write again (a format's clean close) and fail again
    /// (the disk is still full): that second error must neither hide the first nor skip the clean-up that follows.
    /// </summary>
    public static void CloseAfterFailure(IDisposable? output)
    {
        try { output?.Dispose(); }
        catch (Exception e) when (e is DiskImageException or IOException) { }
    }

    /// <summary>Deletes a file, ignoring failures (clean-up after an error that is already being reported).</summary>
    public static void TryDelete(string path)
    {
        try { File.Delete(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
    }

    /// <summary>
    /// fsyncs the folder holding <paramref name="path"/> so that entries created, renamed or removed there survive a
    /// crash. A folder that cannot be opened or synced is an error: the change it holds would not be durable.
    /// </summary>
    /// <exception cref="DiskImageException">Io, DiskFull, FileNotFound naming the folder.</exception>
    public static void SyncDirectoryOf(string path)
    {
        if (OperatingSystem.IsWindows()) return;
        string dir = Path.GetDirectoryName(Path.GetFullPath(path)) ?? "/";
        int fd = Libc.Open(dir, Libc.O_RDONLY);
        if (fd < 0) throw OsErrors.FromErrno(Marshal.GetLastPInvokeError(), dir, "open the folder to make a change in it durable");
        try
        {
            // EINVAL: the file system has no way to sync a folder (its entries are durable by other means).
            if (Libc.FSync(fd) != 0 && Marshal.GetLastPInvokeError() is int errno && errno != Libc.EINVAL)
                throw OsErrors.FromErrno(errno, dir, "sync the folder");
        }
        finally
        {
            Libc.Close(fd);
        }
    }

    /// <summary>Free bytes on the volume holding <paramref name="path"/>, or null when it cannot be told.</summary>
    internal static long? FreeSpace(string path)
    {
        try
        {
            string dir = Path.GetDirectoryName(Path.GetFullPath(path)) ?? "/";
            return new DriveInfo(dir).AvailableFreeSpace;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            return null;
        }
    }

    /// <summary>Refuses to start when the volume cannot hold <paramref name="needed"/> more bytes, saying how much is needed.</summary>
    internal static void RequireFreeSpace(string path, long needed, string operation)
    {
        if (needed <= 0) return;
        if (FreeSpace(path) is long free && free < needed)
            throw new DiskImageException(ErrorKind.DiskFull,
                $"{operation} needs up to {Format(needed)} of free space but the volume has {Format(free)}", path);
    }

    /// <summary>Human-readable byte count (binary units).</summary>
    internal static string Format(long bytes)
    {
        string[] units = { "B", "KiB", "MiB", "GiB", "TiB" };
        double v = bytes;
        int u = 0;
        while (v >= 1024 && u < units.Length - 1) { v /= 1024; u++; }
        return u == 0 ? $"{bytes} B" : $"{v:0.#} {units[u]}";
    }

    private static bool SameDirectory(string a, string b) =>
        string.Equals(Path.GetDirectoryName(Path.GetFullPath(a)), Path.GetDirectoryName(Path.GetFullPath(b)), StringComparison.Ordinal);
}
