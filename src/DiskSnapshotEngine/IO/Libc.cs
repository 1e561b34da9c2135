using System.Runtime.InteropServices;

namespace DiskSnapshotEngine.IO;

/// <summary>
/// Every libc call of the library (the ones .NET does not expose), in one place. Linux only: callers check the OS.
/// Constants and structure layouts are those of the two 64-bit Linux ABIs .NET runs on, x86-64 and arm64, which
/// share the asm-generic values except where a member says otherwise (O_DIRECT, struct stat).
/// Calls return -1 and leave errno in <see cref="Marshal.GetLastPInvokeError"/> unless their summary says otherwise.
/// </summary>
internal static partial class Libc
{
    public const int O_RDONLY = 0x0, O_WRONLY = 0x1, O_RDWR = 0x2, O_CREAT = 0x40, O_EXCL = 0x80, O_CLOEXEC = 0x80000;

    public const int EPERM = 1, ENOENT = 2, EAGAIN = 11, EACCES = 13, EEXIST = 17, ENOTDIR = 20, EISDIR = 21, EINVAL = 22,
        ENOSPC = 28, EROFS = 30, ERANGE = 34, ELOOP = 40, ENODATA = 61, EOPNOTSUPP = 95, EDQUOT = 122;

    /// <summary>O_DIRECT: 0x4000 on x86-64, 0x10000 on arm64 (where 0x4000 is O_DIRECTORY); 0 when unknown.</summary>
    public static int O_DIRECT => RuntimeInformation.ProcessArchitecture switch
    {
        Architecture.X64 => 0x4000,
        Architecture.Arm64 => 0x10000,
        _ => 0,
    };

    /// <summary>open(2) without O_CREAT: a file descriptor, or -1.</summary>
    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Open(string path, int flags);

    /// <summary>open(2) with O_CREAT and the new file's mode (the umask applies).</summary>
    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Open(string path, int flags, int mode);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    public static partial int FSync(int fd);

    /// <summary>lseek(2) whence values that find the next data or hole of a sparse file; ENXIO: none after the offset.</summary>
    public const int SEEK_DATA = 3, SEEK_HOLE = 4, ENXIO = 6;

    /// <summary>lseek(2): the new offset, or -1.</summary>
    [LibraryImport("libc", EntryPoint = "lseek", SetLastError = true)]
    public static partial long LSeek(int fd, long offset, int whence);

    /// <summary>faccessat(2) arguments: the working directory, write permission, the effective (not real) user and group.</summary>
    public const int AT_FDCWD = -100, W_OK = 2, X_OK = 1, AT_EACCESS = 0x200;

    /// <summary>faccessat(2): 0 when the process may access the path as <paramref name="mode"/> asks, or -1 (EROFS, EACCES, EPERM...).</summary>
    [LibraryImport("libc", EntryPoint = "faccessat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int FAccessAt(int dirFd, string path, int mode, int flags);

    /// <summary>link(2): a second name for a file.</summary>
    [LibraryImport("libc", EntryPoint = "link", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Link(string oldPath, string newPath);

    /// <summary>posix_fallocate(3): 0, or the error number itself (errno is not set).</summary>
    [LibraryImport("libc", EntryPoint = "posix_fallocate")]
    public static partial int PosixFallocate(int fd, long offset, long length);

    /// <summary>fallocate(2) with mode 0: allocates blocks for the range (unwritten, reading as zeros); -1 and errno on
    /// failure (EOPNOTSUPP where the file system cannot), never emulated by writing zeros as posix_fallocate may be.</summary>
    [LibraryImport("libc", EntryPoint = "fallocate", SetLastError = true)]
    public static partial int Fallocate(int fd, int mode, long offset, long length);

    /// <summary>fallocate(2) mode: allocate without changing the file's size.</summary>
    public const int FALLOC_FL_KEEP_SIZE = 1;

    /// <summary>posix_fadvise(2) with POSIX_FADV_RANDOM (1): 0, or the error number itself.</summary>
    [LibraryImport("libc", EntryPoint = "posix_fadvise")]
    public static partial int PosixFadvise(int fd, long offset, long length, int advice);

    public const int POSIX_FADV_RANDOM = 1;

    // ---- locks ----

    public const int LOCK_SH = 1, LOCK_EX = 2, LOCK_NB = 4, LOCK_UN = 8;

    /// <summary>flock(2): a whole-file lock owned by the open file description.</summary>
    [LibraryImport("libc", EntryPoint = "flock", SetLastError = true)]
    public static partial int Flock(int fd, int operation);

    /// <summary>Open file description locks (Linux 3.15): byte-range locks owned by the open file, not the process.</summary>
    public const int F_OFD_GETLK = 36, F_OFD_SETLK = 37;

    public const short F_RDLCK = 0, F_WRLCK = 1, F_UNLCK = 2, SEEK_SET = 0;

    /// <summary>
    /// struct flock: l_type and l_whence (2 bytes each), then the 8-byte l_start and l_len (aligned, so at 8 and 16)
    /// and the 4-byte l_pid at 24; 32 bytes, the same on x86-64 and arm64.
    /// </summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct FLock
    {
        public short Type;
        public short Whence;
        public long Start;
        public long Length;
        public int Pid;
    }

    /// <summary>
    /// fcntl(2) with a struct flock argument (F_OFD_SETLK, F_OFD_GETLK). fcntl is variadic; on the x86-64 and arm64
    /// Linux ABIs a variadic pointer argument is passed exactly like a fixed one.
    /// </summary>
    [LibraryImport("libc", EntryPoint = "fcntl", SetLastError = true)]
    public static partial int Fcntl(int fd, int command, ref FLock lockInfo);

    // ---- shared extents ----

    /// <summary>struct file_clone_range (linux/fs.h): src_fd, src_offset, src_length, dest_offset, 8 bytes each.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct FileCloneRange
    {
        public long SourceFd;
        public long SourceOffset;
        public long SourceLength;
        public long DestinationOffset;
    }

    /// <summary>FICLONERANGE = _IOW(0x94, 13, struct file_clone_range), the same on x86-64 and arm64.</summary>
    public const uint FICLONERANGE = 0x4020940D;

    /// <summary>ioctl(2) with a struct file_clone_range argument (variadic, passed like a fixed pointer; see <see cref="Fcntl"/>).</summary>
    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    public static partial int Ioctl(int fd, nuint request, ref FileCloneRange range);

    /// <summary>copy_file_range(2): the kernel copies between two files, the bytes never pass through us.</summary>
    [LibraryImport("libc", EntryPoint = "copy_file_range", SetLastError = true)]
    public static partial nint CopyFileRange(int fdIn, ref long offsetIn, int fdOut, ref long offsetOut, nuint length, uint flags);

    // ---- ownership and extended attributes ----

    /// <summary>chown(2).</summary>
    [LibraryImport("libc", EntryPoint = "chown", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Chown(string path, uint uid, uint gid);

    /// <summary>llistxattr(2): the NUL-separated names, their total length, or -1.</summary>
    [LibraryImport("libc", EntryPoint = "llistxattr", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial nint ListXattr(string path, ref byte list, nuint size);

    /// <summary>lgetxattr(2): the value's length, or -1.</summary>
    [LibraryImport("libc", EntryPoint = "lgetxattr", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial nint GetXattr(string path, string name, ref byte value, nuint size);

    /// <summary>realpath(3) with a null buffer: a malloc'd canonical path (free it with <see cref="Free"/>), or 0.</summary>
    [LibraryImport("libc", EntryPoint = "realpath", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial nint RealPath(string path, nint resolved);

    /// <summary>free(3) of memory libc allocated.</summary>
    [LibraryImport("libc", EntryPoint = "free")]
    public static partial void Free(nint memory);

    /// <summary>lsetxattr(2) with flags 0 (create or replace).</summary>
    [LibraryImport("libc", EntryPoint = "lsetxattr", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int SetXattr(string path, string name, ref byte value, nuint size, int flags);

    /// <summary>lremovexattr(2).</summary>
    [LibraryImport("libc", EntryPoint = "lremovexattr", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int RemoveXattr(string path, string name);

    // ---- stat ----

    /// <summary>The fields of struct stat the library reads.</summary>
    public readonly record struct StatInfo(ulong Device, ulong Inode, uint Mode, uint Uid, uint Gid)
    {
        /// <summary>st_blocks: 512-byte units the file system allocated to the file.</summary>
        public long Blocks { get; init; }
    }

    /// <summary>stat(2) of <paramref name="path"/> (following symbolic links): 0 and the fields, or -1.</summary>
    public static int Stat(string path, out StatInfo info) =>
        StatCall((ref byte b) => NativeStat(path, ref b), (ref byte b) => NativeXStat(StatVersion, path, ref b), out info);

    /// <summary>lstat(2) of <paramref name="path"/> (a symbolic link itself, not its target): 0 and the fields, or -1.</summary>
    public static int LStat(string path, out StatInfo info) =>
        StatCall((ref byte b) => NativeLStat(path, ref b), (ref byte b) => NativeLXStat(StatVersion, path, ref b), out info);

    /// <summary>geteuid(2): the user the process acts as.</summary>
    [LibraryImport("libc", EntryPoint = "geteuid")]
    public static partial uint GetEuid();

    /// <summary>fstat(2) of an open descriptor: 0 and the fields, or -1.</summary>
    public static int FStat(int fd, out StatInfo info) =>
        StatCall((ref byte b) => NativeFStat(fd, ref b), (ref byte b) => NativeFXStat(StatVersion, fd, ref b), out info);

    private delegate int StatFunction(ref byte buffer);

    private static int StatCall(StatFunction call, StatFunction beforeGlibc233, out StatInfo info)
    {
        Span<byte> st = stackalloc byte[256];
        int rc;
        try { rc = call(ref MemoryMarshal.GetReference(st)); }
        catch (EntryPointNotFoundException) { rc = beforeGlibc233(ref MemoryMarshal.GetReference(st)); }
        info = rc == 0 ? Parse(st) : default;
        return rc;
    }

    // struct stat: st_dev and st_ino are the first two 8-byte fields on both ABIs. x86-64 then has an 8-byte
    // st_nlink, so st_mode, st_uid and st_gid sit at 24, 28 and 32; arm64 (asm-generic) has st_mode at 16, a 4-byte
    // st_nlink at 20, st_uid at 24 and st_gid at 28.
    private static StatInfo Parse(ReadOnlySpan<byte> st)
    {
        bool x64 = RuntimeInformation.ProcessArchitecture == Architecture.X64;
        int mode = x64 ? 24 : 16, uid = x64 ? 28 : 24, gid = x64 ? 32 : 28;
        return new StatInfo(BitConverter.ToUInt64(st[..8]), BitConverter.ToUInt64(st[8..16]),
            BitConverter.ToUInt32(st.Slice(mode, 4)), BitConverter.ToUInt32(st.Slice(uid, 4)), BitConverter.ToUInt32(st.Slice(gid, 4)))
        {
            // st_blocks is at 64 on both ABIs (after st_size at 48 and an 8-byte st_blksize, or a 4-byte one and padding).
            Blocks = BitConverter.ToInt64(st.Slice(64, 8)),
        };
    }

    [LibraryImport("libc", EntryPoint = "stat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int NativeStat(string path, ref byte buf);

    [LibraryImport("libc", EntryPoint = "lstat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int NativeLStat(string path, ref byte buf);

    [LibraryImport("libc", EntryPoint = "fstat", SetLastError = true)]
    private static partial int NativeFStat(int fd, ref byte buf);

    // glibc before 2.33 exports stat and fstat only as __xstat and __fxstat, whose _STAT_VER is 1 on x86-64, 0 on arm64.
    private static int StatVersion => RuntimeInformation.ProcessArchitecture == Architecture.X64 ? 1 : 0;

    [LibraryImport("libc", EntryPoint = "__xstat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int NativeXStat(int ver, string path, ref byte buf);

    [LibraryImport("libc", EntryPoint = "__lxstat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int NativeLXStat(int ver, string path, ref byte buf);

    [LibraryImport("libc", EntryPoint = "__fxstat", SetLastError = true)]
    private static partial int NativeFXStat(int ver, int fd, ref byte buf);
}
