using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Tests.Infrastructure;

/// <summary>
/// Whether some process holds a lock on a file, read from /proc/locks, where flock locks (FLOCK) and QEMU-style OFD
/// byte-range locks (OFDLCK) both show with the file's device and inode. Looking never takes a lock: a probe that
/// took one (as `flock --nonblock --exclusive FILE true` did) makes the very dse process it waits for fail its open
/// with exit 12, since dse refuses a conflict at once instead of waiting, and the wait then times out.
/// </summary>
public static class LockProbe
{
    /// <summary>The /proc/locks lines about <paramref name="path"/> (any holder, this process included).</summary>
    public static IReadOnlyList<string> Locks(string path)
    {
        var node = FileNode.Of(path);
        // glibc's dev_t encoding: major in bits 8-19 (and 32-43), minor in bits 0-7 (and 12-31); /proc/locks prints
        // them in hex, "MAJ:MIN:INODE".
        ulong major = ((node.Device >> 8) & 0xfff) | ((node.Device >> 32) & ~0xfffUL);
        ulong minor = (node.Device & 0xff) | ((node.Device >> 12) & ~0xffUL);
        string key = $"{major:x2}:{minor:x2}:{node.Inode}";
        return File.ReadLines("/proc/locks")
            .Where(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries).Contains(key, StringComparer.OrdinalIgnoreCase))
            .ToList();
    }

    /// <summary>True when some process holds a flock or OFD lock on the file right now.</summary>
    public static bool IsHeld(string path) => Locks(path).Count > 0;

    /// <summary>Waits (up to <paramref name="seconds"/>) until some process holds a lock on the file, e.g. a dse process has opened the image.</summary>
    public static void WaitUntilHeld(string path, int seconds = 30)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (DateTime.UtcNow < deadline)
        {
            if (IsHeld(path)) return;
            Thread.Sleep(20);
        }
        throw new TimeoutException($"nothing locked {path}");
    }
}
