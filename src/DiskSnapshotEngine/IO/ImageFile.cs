using DiskSnapshotEngine.Errors;
using Microsoft.Win32.SafeHandles;

namespace DiskSnapshotEngine.IO;

/// <summary>
/// A real image file: <see cref="RandomAccess"/> on a <see cref="SafeFileHandle"/>, no shared position.
/// Locking: a writer opens with <see cref="FileShare.None"/> and a reader with <see cref="FileShare.Read"/>;
/// on Unix .NET turns these into flock(LOCK_EX|LOCK_NB) and flock(LOCK_SH|LOCK_NB), so readers share,
/// a writer excludes everyone, and a conflict fails at once instead of waiting.
/// </summary>
public sealed class ImageFile : IImageFile
{
    private readonly SafeFileHandle _handle;
    private long _length;

    private ImageFile(SafeFileHandle handle, string path, bool canWrite)
    {
        _handle = handle;
        Path = path;
        CanWrite = canWrite;
        _length = RandomAccess.GetLength(handle);
    }

    /// <inheritdoc />
    public string Path { get; }

    /// <summary>The OS handle (sparse-file probes need it).</summary>
    internal SafeFileHandle Handle => _handle;

    /// <inheritdoc />
    public bool CanWrite { get; }

    /// <inheritdoc />
    public long Length => _length;

    /// <summary>Opens an existing regular file, locked shared (read-only) or exclusive (writable).</summary>
    /// <exception cref="DiskImageException">FileNotFound (missing, FIFO, device, directory, loop), Locked, Io.</exception>
    public static ImageFile Open(string path, bool writable)
    {
        var node = FileNode.Of(path);
        try
        {
            var handle = File.OpenHandle(node.FullPath, FileMode.Open,
                writable ? FileAccess.ReadWrite : FileAccess.Read,
                writable ? FileShare.None : FileShare.Read,
                FileOptions.RandomAccess);
            return new ImageFile(handle, node.FullPath, writable);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw Translate(e, node.FullPath, writable ? "open for writing" : "open for reading");
        }
    }

    /// <summary>Creates a new file (never overwrites), locked exclusive. <paramref name="preallocate"/> reserves space (fallocate) for fixed images.</summary>
    /// <exception cref="DiskImageException">AlreadyExists, DiskFull, Io.</exception>
    public static ImageFile Create(string path, long preallocate = 0)
    {
        string full = System.IO.Path.GetFullPath(path);
        if (File.Exists(full) || Directory.Exists(full))
            throw new DiskImageException(ErrorKind.AlreadyExists, "the file already exists; refusing to overwrite it", full);
        try
        {
            var handle = File.OpenHandle(full, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None,
                FileOptions.RandomAccess, preallocate);
            return new ImageFile(handle, full, true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw Translate(e, full, "create");
        }
    }

    /// <inheritdoc />
    public int Read(Span<byte> buffer, long fileOffset)
    {
        try { return RandomAccess.Read(_handle, buffer, fileOffset); }
        catch (IOException e) { throw Translate(e, Path, "read"); }
    }

    /// <inheritdoc />
    public void Write(ReadOnlySpan<byte> buffer, long fileOffset)
    {
        if (!CanWrite) ThrowHelper.ReadOnly(Path, "write");
        try { RandomAccess.Write(_handle, buffer, fileOffset); }
        catch (IOException e) { throw Translate(e, Path, "write"); }
        long end = fileOffset + buffer.Length;
        if (end > _length) _length = end;
    }

    /// <inheritdoc />
    public void SetLength(long length)
    {
        if (!CanWrite) ThrowHelper.ReadOnly(Path, "resize");
        try { RandomAccess.SetLength(_handle, length); }
        catch (IOException e) { throw Translate(e, Path, "resize"); }
        _length = length;
    }

    /// <summary>
    /// Grows the file to <paramref name="length"/> with the space really reserved (fallocate), so a fixed image
    /// cannot hit a full disk later. Falls back to a sparse SetLength where fallocate is not available.
    /// </summary>
    public void Reserve(long length)
    {
        if (!CanWrite) ThrowHelper.ReadOnly(Path, "resize");
        if (length <= _length) return;
        if (OperatingSystem.IsLinux())
        {
            bool added = false;
            try
            {
                _handle.DangerousAddRef(ref added);
                int rc = posix_fallocate((int)_handle.DangerousGetHandle(), 0, length);
                if (rc == 28 || rc == 122)
                    throw new DiskImageException(ErrorKind.DiskFull, $"cannot reserve {length} bytes: no space left on the device", Path);
                if (rc == 0)
                {
                    _length = length;
                    return;
                }
            }
            finally
            {
                if (added) _handle.DangerousRelease();
            }
        }
        SetLength(length);
    }

    [System.Runtime.InteropServices.DllImport("libc")]
    private static extern int posix_fallocate(int fd, long offset, long len);

    /// <inheritdoc />
    public void Flush()
    {
        if (!CanWrite) return;
        try { RandomAccess.FlushToDisk(_handle); }
        catch (IOException e) { throw Translate(e, Path, "flush"); }
    }

    /// <inheritdoc />
    public void Dispose() => _handle.Dispose();

    /// <summary>Maps an operating-system exception to the engine's error kinds.</summary>
    public static DiskImageException Translate(Exception e, string path, string operation)
    {
        if (e is DiskImageException d) return d;
        int code = e.HResult & 0xFFFF;
        // ENOSPC (28) / EDQUOT (122) on Unix; ERROR_HANDLE_DISK_FULL (39) / ERROR_DISK_FULL (112) on Windows.
        bool full = OperatingSystem.IsWindows() ? code is 39 or 112 : code is 28 or 122
                    || e.Message.Contains("No space left", StringComparison.OrdinalIgnoreCase);
        if (full)
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
        if (e is UnauthorizedAccessException)
            return new DiskImageException(ErrorKind.Io, $"cannot {operation}: permission denied", path, inner: e);
        return new DiskImageException(ErrorKind.Io, $"cannot {operation}: {e.Message}", path, inner: e);
    }
}
