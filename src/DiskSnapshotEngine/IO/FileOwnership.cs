using System.Runtime.InteropServices;
using System.Text;
using DiskSnapshotEngine.Errors;

namespace DiskSnapshotEngine.IO;

/// <summary>
/// Gives a new file everything about access that the file it replaces had: owner, group, permission bits, POSIX ACLs
/// and every extended attribute (user.*, security.* labels such as SELinux's, trusted.* when root). A disk owned by
/// the hypervisor's user (libvirt-qemu, 0640, an svirt label) must still be usable by the VM, and no more readable by
/// others, after dse replaces its file. POSIX ACLs are the system.posix_acl_access attribute, so they travel with
/// the attributes. Linux only; elsewhere nothing is copied.
/// </summary>
internal static class FileOwnership
{
    /// <summary>Copies owner, group, mode, ACLs and extended attributes of <paramref name="template"/> onto <paramref name="target"/>.</summary>
    /// <exception cref="DiskImageException">Io naming what could not be given (for example, another user's ownership when not root).</exception>
    public static void Copy(string template, string target)
    {
        if (!OperatingSystem.IsLinux()) return;
        if (Libc.Stat(template, out var from) != 0) throw Error(template, "cannot read the owner and mode");
        if (Libc.Stat(target, out var to) != 0) throw Error(target, "cannot read the owner and mode");

        // chown first: it clears set-id bits and file capabilities, which the attributes and mode then restore.
        if ((from.Uid, from.Gid) != (to.Uid, to.Gid) && Libc.Chown(target, from.Uid, from.Gid) != 0)
            throw Error(target, $"cannot give the new file the owner {from.Uid}:{from.Gid} of {template}");

        var wanted = Names(template);
        foreach (var name in wanted)
        {
            var value = Value(template, name);
            if (value is null) continue; // removed meanwhile
            if (Libc.SetXattr(target, name, ref MemoryMarshal.GetArrayDataReference(value), (nuint)value.Length, 0) != 0)
                throw Error(target, $"cannot give the new file the extended attribute {name} of {template}");
        }
        // The new file may have come with attributes of its own (a default ACL of the folder, a label): they go, so that
        // access is exactly the replaced file's. One that cannot be removed (a mandatory label) is left to the system.
        foreach (var name in Names(target).Except(wanted, StringComparer.Ordinal))
            _ = Libc.RemoveXattr(target, name);

        // Last: with an ACL, the group bits are its mask, which the template's mode already agrees with.
        try { File.SetUnixFileMode(target, (UnixFileMode)(from.Mode & 0xFFF)); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new DiskImageException(ErrorKind.Io, $"cannot give the new file the mode of {template}: {e.Message}", target, inner: e);
        }
    }

    /// <summary>
    /// The mode to create a new file with so that it is never readable by more users than <paramref name="sources"/>,
    /// as <c>cp</c> makes it: 0666 (less the umask, which open(2) applies) less every group and other permission that
    /// one of the sources denies. Given to the create itself, not set afterwards: another user could open a file
    /// created readable before a chmod, and an open descriptor keeps reading whatever is written later. A file
    /// system without modes of its own (vfat, a CIFS share: access set by the mount) ignores it.
    /// </summary>
    public static uint CreateModeFor(IEnumerable<string> sources)
    {
        uint mode = NewFileMode;
        if (!OperatingSystem.IsLinux()) return mode;
        foreach (var source in sources)
        {
            if (Libc.Stat(source, out var from) != 0) continue; // a layer with no file of its own (in memory) denies nothing
            mode &= 0xFC0 | (from.Mode & 0x3F); // owner bits stay; group and other only as the source allows
        }
        return mode;
    }

    /// <summary>0666: the mode open(2) is asked for a new file when nothing restricts it (the umask then applies).</summary>
    public const uint NewFileMode = 0x1B6;

    private static DiskImageException Error(string path, string what)
    {
        int errno = Marshal.GetLastPInvokeError();
        string why = errno is Libc.EPERM or Libc.EACCES ? "permission denied (run as root or as the disk's owner)" : Marshal.GetPInvokeErrorMessage(errno);
        return new DiskImageException(ErrorKind.Io, $"{what}: {why}", path);
    }

    // The extended attribute names of a file (those this process may see); none where the file system has none.
    private static List<string> Names(string path)
    {
        for (int size = 1024; ; size *= 4)
        {
            var buffer = new byte[size];
            nint n = Libc.ListXattr(path, ref MemoryMarshal.GetArrayDataReference(buffer), (nuint)buffer.Length);
            if (n >= 0)
                return Encoding.UTF8.GetString(buffer, 0, (int)n).Split('\0', StringSplitOptions.RemoveEmptyEntries).ToList();
            int errno = Marshal.GetLastPInvokeError();
            if (errno == Libc.EOPNOTSUPP) return new List<string>();
            if (errno != Libc.ERANGE || size > 1 << 22) throw Error(path, "cannot list the extended attributes");
        }
    }

    private static byte[]? Value(string path, string name)
    {
        for (int size = 256; ; size *= 4)
        {
            var buffer = new byte[size];
            nint n = Libc.GetXattr(path, name, ref MemoryMarshal.GetArrayDataReference(buffer), (nuint)buffer.Length);
            if (n >= 0) return buffer[..(int)n];
            int errno = Marshal.GetLastPInvokeError();
            if (errno == Libc.ENODATA) return null;
            if (errno != Libc.ERANGE || size > 1 << 24) throw Error(path, $"cannot read the extended attribute {name}");
        }
    }
}
