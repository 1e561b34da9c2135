using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace DiskSnapshotEngine.IO;

/// <summary>
/// QEMU's image locking (block/file-posix.c of QEMU 7.2, raw_apply_lock_bytes and raw_check_lock_bytes), spoken so
/// that every QEMU, qemu-img, qemu-nbd and libvirt-run VM on the host sees dse and dse sees them. Each block-layer
/// permission bit (include/block/block-common.h: CONSISTENT_READ 0, WRITE 1, WRITE_UNCHANGED 2, RESIZE 3) has two
/// bytes in the file, locked shared (F_RDLCK) with open file description locks: byte 100+bit means "I hold this
/// permission", byte 200+bit "I do not share it". A process may take a permission when nobody else locks 200+bit,
/// and may refuse to share it when nobody else locks 100+bit; both tests are F_OFD_GETLK for a write lock.
/// <para>What QEMU 7.2 holds (read from /proc/locks beside qemu-io and qemu-nbd): read-write, bytes 100, 101, 103,
/// 201 and 203 (it holds CONSISTENT_READ, WRITE and RESIZE and shares neither WRITE nor RESIZE); read-only, 100, 201
/// and 203; with -U (force share) only 100. dse takes exactly the same bytes in the same three cases.</para>
/// </summary>
internal static class QemuPermissionLocks
{
    private const int PermissionBase = 100, NotSharedBase = 200;

    /// <summary>QEMU's block-layer permissions (BLK_PERM_*).</summary>
    [Flags]
    public enum Permission
    {
        None = 0,
        ConsistentRead = 1 << 0,
        Write = 1 << 1,
        WriteUnchanged = 1 << 2,
        Resize = 1 << 3,
    }

    private static readonly Permission[] s_all = { Permission.ConsistentRead, Permission.Write, Permission.WriteUnchanged, Permission.Resize };

    /// <summary>The permissions held and those not shared, for a way of opening a file.</summary>
    public static (Permission Held, Permission NotShared) For(FileLockMode mode) => mode switch
    {
        FileLockMode.Exclusive => (Permission.ConsistentRead | Permission.Write | Permission.Resize, Permission.Write | Permission.Resize),
        FileLockMode.Shared => (Permission.ConsistentRead, Permission.Write | Permission.Resize),
        _ => (Permission.ConsistentRead, Permission.None),
    };

    /// <summary>What stands in the way: a permission someone else holds that we do not share, or one we need that someone does not share.</summary>
    public readonly record struct Conflict(Permission Permission, bool HeldByOther)
    {
        /// <summary>QEMU's own words for the permission ("write", "consistent read", ...).</summary>
        public string Name => Permission switch
        {
            Permission.ConsistentRead => "consistent read",
            Permission.WriteUnchanged => "write unchanged",
            _ => Permission.ToString().ToLowerInvariant(),
        };

        /// <summary>Says what the other process does, in QEMU's terms.</summary>
        public override string ToString() => HeldByOther
            ? $"another process holds the \"{Name}\" permission (QEMU lock byte {PermissionBase + Bit(Permission)})"
            : $"another process does not share the \"{Name}\" permission (QEMU lock byte {NotSharedBase + Bit(Permission)})";
    }

    /// <summary>
    /// Takes the bytes of <paramref name="mode"/> on <paramref name="handle"/>, then tests for conflicts with
    /// F_OFD_GETLK: QEMU's order (raw_handle_perm_lock calls raw_apply_lock_bytes, then raw_check_lock_bytes), so that
    /// two processes racing for the same file each see the other's bytes and at least one of them backs off; testing
    /// before taking could let both through. The bytes stay taken until <see cref="Release"/> (FileLock releases
    /// them on a conflict and before closing).
    /// </summary>
    /// <returns>null when the file may be used so; otherwise the first conflict found.</returns>
    public static Conflict? Apply(SafeFileHandle handle, FileLockMode mode)
    {
        if (!IsSupported) return null;
        var (held, notShared) = For(mode);
        bool added = false;
        try
        {
            handle.DangerousAddRef(ref added);
            int fd = (int)handle.DangerousGetHandle();
            foreach (var p in s_all)
            {
                if ((held & p) != 0 && !Take(fd, PermissionBase + Bit(p))) return null;
                if ((notShared & p) != 0 && !Take(fd, NotSharedBase + Bit(p))) return null;
            }
            foreach (var p in s_all)
                if ((held & p) != 0 && IsLockedElsewhere(fd, NotSharedBase + Bit(p))) return new Conflict(p, HeldByOther: false);
            foreach (var p in s_all)
                if ((notShared & p) != 0 && IsLockedElsewhere(fd, PermissionBase + Bit(p))) return new Conflict(p, HeldByOther: true);
            return null;
        }
        finally
        {
            if (added) handle.DangerousRelease();
        }
    }

    /// <summary>Unlocks every permission byte this descriptor may hold (unlocking a byte not held is a no-op).</summary>
    public static void Release(int fd)
    {
        if (!IsSupported) return;
        var fl = new Libc.FLock { Type = Libc.F_UNLCK, Whence = Libc.SEEK_SET, Start = PermissionBase, Length = 2 * (NotSharedBase - PermissionBase) };
        _ = Libc.Fcntl(fd, Libc.F_OFD_SETLK, ref fl);
    }

    /// <summary>The lock byte a permission's "held" flag lives at (byte 100 + bit).</summary>
    public static int HeldByte(Permission p) => PermissionBase + Bit(p);

    private static int Bit(Permission p) => System.Numerics.BitOperations.TrailingZeroCount((int)p);

    // OFD locks exist on Linux 3.15 and later with 64-bit struct flock layouts (x86-64, arm64).
    private static bool IsSupported => OperatingSystem.IsLinux() && RuntimeInformation.ProcessArchitecture is Architecture.X64 or Architecture.Arm64;

    // A shared lock on one byte. False when the file system has no OFD locks (EINVAL, ENOLCK, EOPNOTSUPP): then
    // only the flock protects the file, as before. EAGAIN (someone holds a write lock on that byte, which QEMU never
    // takes) counts as taken: the checks that follow see that lock and report the conflict.
    private static bool Take(int fd, int offset)
    {
        var fl = new Libc.FLock { Type = Libc.F_RDLCK, Whence = Libc.SEEK_SET, Start = offset, Length = 1 };
        if (Libc.Fcntl(fd, Libc.F_OFD_SETLK, ref fl) == 0) return true;
        int errno = Marshal.GetLastPInvokeError();
        return errno is Libc.EAGAIN or Libc.EACCES;
    }

    // F_OFD_GETLK for a write lock on one byte: whether any other open file description holds a lock there (our
    // own locks on this descriptor never conflict with it).
    private static bool IsLockedElsewhere(int fd, int offset)
    {
        var fl = new Libc.FLock { Type = Libc.F_WRLCK, Whence = Libc.SEEK_SET, Start = offset, Length = 1 };
        return Libc.Fcntl(fd, Libc.F_OFD_GETLK, ref fl) == 0 && fl.Type != Libc.F_UNLCK;
    }
}
