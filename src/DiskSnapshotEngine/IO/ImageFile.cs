using DiskSnapshotEngine.Errors;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace DiskSnapshotEngine.IO;

/// <summary>
/// A real image file: <see cref="RandomAccess"/> on a <see cref="SafeFileHandle"/>, no shared position.
/// Locking (<see cref="FileLock"/>, taken by <see cref="LockedOpen"/>): readers share, a writer excludes everyone,
/// dse and QEMU see each other's locks, and a conflict fails at once, naming the holder, instead of waiting.
/// </summary>
internal sealed class ImageFile : IImageFile
{
    private readonly SafeFileHandle _handle;
    private SafeFileHandle? _direct;
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
    public static ImageFile Open(string path, bool writable) =>
        Open(path, writable ? FileLockMode.Exclusive : FileLockMode.Shared);

    /// <summary>Opens an existing regular file with the given lock (<see cref="FileLockMode.Exclusive"/> opens it writable).</summary>
    /// <exception cref="DiskImageException">FileNotFound (missing, FIFO, device, directory, loop), Locked, Io.</exception>
    public static ImageFile Open(string path, FileLockMode mode)
    {
        var handle = LockedOpen.Open(path, mode);
        try { return new ImageFile(handle, System.IO.Path.GetFullPath(path), mode == FileLockMode.Exclusive); }
        catch (IOException e)
        {
            FileLock.ReleaseAndClose(handle);
            throw Translate(e, path, "open");
        }
    }

    /// <summary>Creates a new, empty file (never overwrites), locked exclusive, with <paramref name="mode"/> less the umask; a fixed image reserves its space with <see cref="Reserve"/>.</summary>
    /// <remarks><paramref name="named"/>: the file the user gave, which refusals name, when <paramref name="path"/> is a temporary file beside it.</remarks>
    /// <exception cref="DiskImageException">AlreadyExists, ReadOnly (the folder), DiskFull, Io.</exception>
    public static ImageFile Create(string path, uint mode = FileOwnership.NewFileMode, string? named = null)
    {
        string full = System.IO.Path.GetFullPath(path);
        var handle = LockedOpen.Create(full, mode, named);
        try { return new ImageFile(handle, full, true); }
        catch (IOException e)
        {
            FileLock.ReleaseAndClose(handle);
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
        if (!TryWriteDirect(buffer, fileOffset))
        {
            if (_allocateFirst && buffer.Length >= DirectMinimum) Allocate(fileOffset, buffer.Length);
            try { RandomAccess.Write(_handle, buffer, fileOffset); }
            catch (IOException e) { throw Translate(e, Path, "write"); }
            catch (ArgumentOutOfRangeException e) { throw TooLarge(e, Path, fileOffset + buffer.Length); }
        }
        // Page-cache workers write one file from two threads: the length only grows, whichever write ends last.
        long end = fileOffset + buffer.Length, seen = Volatile.Read(ref _length);
        while (end > seen)
        {
            long was = Interlocked.CompareExchange(ref _length, end, seen);
            if (was == seen) break;
            seen = was;
        }
    }

    // Direct I/O needs the memory, the offset and the length aligned to the device's logical block; 4 KiB covers
    // 512-byte and 4Kn devices. Below 64 KiB (metadata) the page cache is the better path anyway.
    private const int DirectAlignment = 4096;
    private const int DirectMinimum = 64 << 10;

    /// <summary>
    /// Sends large aligned writes through a second handle opened with O_DIRECT, so bulk data goes from our buffer
    /// to the device: no page-cache copy, no dirty backlog for the final fsync to wait on, and a huge clone does not
    /// evict everyone else's cache. Meant for files being staged under a temporary name (full clone, compact) that
    /// end with one fsync anyway. Each write goes out as a few concurrent requests (<see cref="ParallelDirectWrite"/>)
    /// but still returns only when all of it is written, so writes stay synchronous and in order and the drivers'
    /// ordering holds; small and
    /// unaligned writes (metadata) keep the page cache, which the kernel keeps coherent with direct writes.
    /// Without O_DIRECT support (or on any refusal of a direct write) every write simply stays buffered.
    /// </summary>
    internal void UseDirectWrites()
    {
        int direct = Libc.O_DIRECT;
        if (!OperatingSystem.IsLinux() || direct == 0 || _direct is not null) return;
        try
        {
            // Reopen the very file we hold (not whatever the name means now) through /proc; the name is the fallback.
            int fd = -1;
            bool added = false;
            try
            {
                _handle.DangerousAddRef(ref added);
                fd = Libc.Open($"/proc/self/fd/{_handle.DangerousGetHandle()}", Libc.O_WRONLY | direct | Libc.O_CLOEXEC);
            }
            finally
            {
                if (added) _handle.DangerousRelease();
            }
            if (fd < 0) fd = Libc.Open(Path, Libc.O_WRONLY | direct | Libc.O_CLOEXEC);
            if (fd >= 0) _direct = new SafeFileHandle(fd, ownsHandle: true);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            // No libc open to call: buffered writes work everywhere.
        }
    }

    /// <summary>
    /// For a file written through the page cache and never synced by us (<c>--no-sync</c> outputs): each large write
    /// first allocates its range (<see cref="Allocate"/>), so the kernel maps it as one extent at once instead of
    /// reserving and tracking every 4 KiB page for delayed allocation; measured on ext4, that is about a fifth of
    /// the CPU a buffered copy costs. Only ranges about to be written are allocated, so holes stay holes.
    /// </summary>
    internal void UseAllocatedWrites() => _allocateFirst = OperatingSystem.IsLinux();

    private bool _allocateFirst;

    /// <summary>
    /// With <see cref="UseAllocatedWrites"/>, allocates [<paramref name="offset"/>, +<paramref name="length"/>) before
    /// it is written (fallocate, the file's size unchanged); where the file system cannot, nothing is asked again.
    /// </summary>
    /// <exception cref="DiskImageException">DiskFull: no space left for the range.</exception>
    internal void Allocate(long offset, long length)
    {
        if (!_allocateFirst || length <= 0) return;
        // Not supported here (or refused for another reason): the write itself reports any real problem.
        if (!TryFallocate(offset, length, keepSize: true)) _allocateFirst = false;
    }

    /// <summary>
    /// Allocates [<paramref name="offset"/>, +<paramref name="length"/>): with <paramref name="keepSize"/>, fallocate(2)
    /// with FALLOC_FL_KEEP_SIZE (never emulated); else posix_fallocate(3), which grows the file and which the C library
    /// emulates by writing where the file system cannot. One errno policy for both: ENOSPC or EDQUOT is DiskFull
    /// naming the range; any other refusal (EOPNOTSUPP, ENOSYS, no such libc entry) is false, and the caller falls back
    /// (a sparse size, a plain write), which reports any real problem itself.
    /// </summary>
    /// <exception cref="DiskImageException">DiskFull: no space left for the range.</exception>
    private bool TryFallocate(long offset, long length, bool keepSize)
    {
        bool added = false;
        try
        {
            _handle.DangerousAddRef(ref added);
            int fd = (int)_handle.DangerousGetHandle();
            int errno = keepSize
                ? (Libc.Fallocate(fd, Libc.FALLOC_FL_KEEP_SIZE, offset, length) == 0 ? 0 : Marshal.GetLastPInvokeError())
                : Libc.PosixFallocate(fd, offset, length); // returns the error number itself
            if (OsErrors.IsDiskFull(errno))
                throw new DiskImageException(ErrorKind.DiskFull, $"cannot allocate {length} bytes at {offset}: no space left on the device", Path, fileOffset: offset);
            return errno == 0;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return false;
        }
        finally
        {
            if (added) _handle.DangerousRelease();
        }
    }

    /// <summary>Writes that went through the O_DIRECT handle (tests check that the fast path is really taken).</summary>
    internal long DirectWrites { get; private set; }

    /// <summary>The requests those direct writes went out as (each large one is split, see <see cref="DirectStreams"/>).</summary>
    internal long DirectRequests { get; private set; }

    /// <summary>Requests in flight per large direct write (see <see cref="ParallelDirectWrite"/>; tests set it).</summary>
    internal int DirectStreams { get; set; } = ParallelDirectWrite.Streams;

    /// <summary>True while large aligned writes go through O_DIRECT.</summary>
    internal bool DirectWritesEnabled => _direct is not null;

    private unsafe bool TryWriteDirect(ReadOnlySpan<byte> buffer, long fileOffset)
    {
        if (_direct is null || buffer.Length < DirectMinimum || buffer.Length % DirectAlignment != 0
            || fileOffset % DirectAlignment != 0)
            return false;
        try
        {
            fixed (byte* p = buffer)
            {
                if ((nuint)p % DirectAlignment != 0) return false;
                DirectRequests += ParallelDirectWrite.Write(_direct, p, buffer.Length, fileOffset, DirectStreams);
            }
            DirectWrites++;
            return true;
        }
        catch (IOException e) when ((e.HResult & 0xFFFF) is Libc.EINVAL or Libc.EOPNOTSUPP)
        {
            // Some file systems refuse direct I/O for certain ranges or alignments: stay buffered from now on.
            _direct.Dispose();
            _direct = null;
            return false;
        }
        catch (IOException e)
        {
            // A real failure (full disk, I/O error) is reported as such, not retried through the page cache.
            throw Translate(e, Path, "write");
        }
    }


    /// <inheritdoc />
    public void SetLength(long length)
    {
        if (!CanWrite) ThrowHelper.ReadOnly(Path, "resize");
        try { RandomAccess.SetLength(_handle, length); }
        catch (IOException e) { throw Translate(e, Path, "resize"); }
        catch (ArgumentOutOfRangeException e) { throw TooLarge(e, Path, length); }
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
        if (OperatingSystem.IsLinux() && TryFallocate(0, length, keepSize: false))
        {
            _length = length;
            return;
        }
        SetLength(length);
    }

    /// <inheritdoc />
    public void Flush()
    {
        if (!CanWrite) return;
        try { RandomAccess.FlushToDisk(_handle); }
        catch (IOException e) { throw Translate(e, Path, "flush"); }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _direct?.Dispose();
        FileLock.ReleaseAndClose(_handle);
    }

    // .NET reports EFBIG (an end past the file system's largest file, which a hostile table can ask for) this way.
    private static DiskImageException TooLarge(Exception e, string path, long end) =>
        new(ErrorKind.DiskFull, $"cannot grow the file to {end} bytes: larger than the file system allows", path,
            fileOffset: end, inner: e);

    /// <summary>Maps an operating-system exception to the engine's error kinds.</summary>
    /// <param name="e">The exception an I/O call threw.</param>
    /// <param name="path">The file the call was about (named in the message).</param>
    /// <param name="operation">What was being done, in words ("read", "flush").</param>
    public static DiskImageException Translate(Exception e, string path, string operation) => OsErrors.Translate(e, path, operation);

    /// <summary>
    /// The bytes the file system allocated to <paramref name="path"/> (st_blocks × 512: what qemu-img calls "disk
    /// size", less than the file size for a sparse file); null where it cannot be told (Windows, a stat failure).
    /// </summary>
    public static long? AllocatedBytes(string path) =>
        OperatingSystem.IsWindows() || Libc.Stat(path, out var st) != 0 ? null : st.Blocks * 512;
}
