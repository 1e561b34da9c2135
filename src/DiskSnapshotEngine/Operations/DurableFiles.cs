using System.Runtime.InteropServices;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Operations;

/// <summary>
/// File-system steps whose ordering the crash-safety of every operation relies on. A rename or a new directory
/// entry is durable only once the directory itself is fsynced (POSIX), so each helper syncs the folder it changed.
/// </summary>
internal static class DurableFiles
{
    /// <summary>
    /// Replaces <paramref name="path"/> with <paramref name="content"/> atomically: a reader (or a crash) sees
    /// either the old file or the new one, never a torn mix (temp file + fsync + rename + fsync of the folder).
    /// </summary>
    public static void WriteAllTextAtomic(string path, string content)
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
            File.Move(temp, path, overwrite: true);
            SyncDirectoryOf(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            TryDelete(temp);
            throw ImageFile.Translate(e, path, "write");
        }
    }

    /// <summary>Atomically renames <paramref name="from"/> to <paramref name="to"/> (replacing it when asked) and syncs the folders.</summary>
    public static void Rename(string from, string to, bool overwrite)
    {
        try { File.Move(from, to, overwrite); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw ImageFile.Translate(e, from, $"rename to {to}");
        }
        SyncDirectoryOf(to);
        if (!SameDirectory(from, to)) SyncDirectoryOf(from);
    }

    /// <summary>
    /// Gives <paramref name="existing"/> a second name <paramref name="newName"/> (a hard link): the file exists under
    /// one name or both at every instant, which is what lets a snapshot take a disk's file without the disk's own path
    /// ever going missing. Falls back to a rename where hard links are not available.
    /// </summary>
    /// <returns>True when a hard link was made; false when the file was renamed instead.</returns>
    public static bool LinkOrRename(string existing, string newName)
    {
        if (!OperatingSystem.IsWindows())
        {
            if (link(existing, newName) == 0)
            {
                SyncDirectoryOf(newName);
                return true;
            }
            int errno = Marshal.GetLastPInvokeError();
            if (errno == 17 /* EEXIST */)
                throw new DiskImageException(ErrorKind.AlreadyExists, "the file already exists; refusing to overwrite it", newName);
            if (errno is 28 or 122)
                throw new DiskImageException(ErrorKind.DiskFull, "cannot link: no space left on the device", newName);
        }
        Rename(existing, newName, overwrite: false);
        return false;
    }

    /// <summary>Deletes a file if it exists and makes the removal durable.</summary>
    public static void Delete(string path)
    {
        if (!File.Exists(path)) return;
        try { File.Delete(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw ImageFile.Translate(e, path, "delete");
        }
        SyncDirectoryOf(path);
    }

    /// <summary>Deletes a file, ignoring failures (clean-up after an error that is already being reported).</summary>
    public static void TryDelete(string path)
    {
        try { File.Delete(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
    }

    /// <summary>fsyncs the folder holding <paramref name="path"/> so that entries created, renamed or removed there survive a crash.</summary>
    public static void SyncDirectoryOf(string path)
    {
        if (OperatingSystem.IsWindows()) return;
        string dir = Path.GetDirectoryName(Path.GetFullPath(path)) ?? "/";
        int fd = Libc.Open(dir, Libc.O_RDONLY);
        if (fd < 0) return;
        try { fsync(fd); }
        finally { close(fd); }
    }

    /// <summary>Free bytes on the volume holding <paramref name="path"/>, or null when it cannot be told.</summary>
    public static long? FreeSpace(string path)
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
    public static void RequireFreeSpace(string path, long needed, string operation)
    {
        if (needed <= 0) return;
        if (FreeSpace(path) is long free && free < needed)
            throw new DiskImageException(ErrorKind.DiskFull,
                $"{operation} needs up to {Format(needed)} of free space but the volume has {Format(free)}", path);
    }

    /// <summary>Human-readable byte count (binary units).</summary>
    public static string Format(long bytes)
    {
        string[] units = { "B", "KiB", "MiB", "GiB", "TiB" };
        double v = bytes;
        int u = 0;
        while (v >= 1024 && u < units.Length - 1) { v /= 1024; u++; }
        return u == 0 ? $"{bytes} B" : $"{v:0.#} {units[u]}";
    }

    private static bool SameDirectory(string a, string b) =>
        string.Equals(Path.GetDirectoryName(Path.GetFullPath(a)), Path.GetDirectoryName(Path.GetFullPath(b)), StringComparison.Ordinal);

    [DllImport("libc", SetLastError = true)]
    private static extern int link([MarshalAs(UnmanagedType.LPUTF8Str)] string oldpath, [MarshalAs(UnmanagedType.LPUTF8Str)] string newpath);

    [DllImport("libc", SetLastError = true)]
    private static extern int fsync(int fd);

    [DllImport("libc")]
    private static extern int close(int fd);
}
