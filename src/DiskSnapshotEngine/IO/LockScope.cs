using DiskSnapshotEngine.Errors;
using Microsoft.Win32.SafeHandles;

namespace DiskSnapshotEngine.IO;

/// <summary>
/// The locks an operation holds on the files it renames, replaces or rewrites, from before its first change until
/// it has finished (snapshot create, revert, delete and repair, rollback, merge, compact). Each file is locked
/// through a descriptor of the scope's own, so the lock follows the file when it changes name: the disk a snapshot
/// operation replaces, and the new file renamed over it, stay locked across every rename and until the catalog is
/// written. Another process therefore sees the old files or the new ones, or is refused at once (exit 12); never a
/// chain half moved. Files the operation creates while the scope is current are held by it too.
/// <para>The scope is ambient: it belongs to the operation's flow of execution (an <see cref="AsyncLocal{T}"/>), and
/// the operation's own opens of a file it holds take no lock of their own (they would conflict with the scope's:
/// locks belong to open files, not processes). Scopes nest; an inner one adds files and releases only those.</para>
/// <para>Off Linux a scope holds nothing and every open locks as usual.</para>
/// </summary>
internal sealed class LockScope : IDisposable
{
    private static readonly AsyncLocal<LockScope?> s_current = new();

    private readonly LockScope? _outer;
    private readonly List<Held> _held = new();
    private bool _disposed;

    private sealed record Held(ulong Device, ulong Inode, bool Exclusive, SafeFileHandle Handle);

    private LockScope(LockScope? outer) => _outer = outer;

    /// <summary>Starts a scope for the current operation (nested in the current one, if any).</summary>
    public static LockScope Begin()
    {
        var scope = new LockScope(s_current.Value);
        s_current.Value = scope;
        return scope;
    }

    /// <summary>
    /// Locks the file <paramref name="path"/> names, exclusively (a writer) or shared (a reader), unless this scope or
    /// an outer one already holds it so. After the lock is taken the path must still name the locked file: another
    /// operation may have renamed a new file over it in between, and then the newly named file is locked instead.
    /// </summary>
    /// <exception cref="DiskImageException">Locked (naming the holder), FileNotFound, Io.</exception>
    public void Lock(string path, bool exclusive = true)
    {
        if (!OperatingSystem.IsLinux()) return;
        string full = Path.GetFullPath(path);
        for (int attempt = 0; attempt < LockedOpen.ReplacedRetries; attempt++)
        {
            var node = FileNode.Of(full);
            if (Covers(node.Device, node.Inode, exclusive)) return;
            var handle = LockedOpen.OpenDescriptor(full, writable: false);
            try
            {
                var st = LockedOpen.StatOf(handle, full);
                if (!Covers(st.Device, st.Inode, exclusive))
                    FileLock.Acquire(handle, full, exclusive ? FileLockMode.Exclusive : FileLockMode.Shared,
                        exclusive ? "lock it for the operation" : "lock it for reading");
                if (LockedOpen.StillNames(full, st))
                {
                    _held.Add(new Held(st.Device, st.Inode, exclusive, handle));
                    return;
                }
            }
            catch
            {
                FileLock.ReleaseAndClose(handle);
                throw;
            }
            FileLock.ReleaseAndClose(handle);
        }
        throw LockedOpen.KeptReplaced(full);
    }

    /// <summary>Like <see cref="Lock"/>, but a path that does not exist (a dangling link included) is simply skipped.</summary>
    public void LockIfExists(string path, bool exclusive = true)
    {
        // File.Exists is true for a link whose target is gone (a merge's remove phase stopped after removing the
        // target): there is nothing to lock, and a rerun through that link must still finish.
        if (File.Exists(path) && !DanglingLink(path)) Lock(path, exclusive);
    }

    // A link loop is not dangling: Lock then names the loop (FileNotFound) rather than an untranslated IOException.
    private static bool DanglingLink(string path)
    {
        try { return File.ResolveLinkTarget(path, returnFinalTarget: true) is { Exists: false }; }
        catch (IOException) { return false; }
    }

    /// <summary>True when the current scope (or one it is nested in) holds the file, exclusively when <paramref name="exclusive"/>.</summary>
    internal static bool Covers(ulong device, ulong inode, bool exclusive)
    {
        for (var s = s_current.Value; s is not null; s = s._outer)
            foreach (var h in s._held)
                if (h.Device == device && h.Inode == inode && (h.Exclusive || !exclusive)) return true;
        return false;
    }

    /// <summary>The scope of the current operation, if any.</summary>
    internal static LockScope? Current => s_current.Value;

    /// <summary>Holds a file the operation has just created (through a descriptor opened without a lock), exclusively.</summary>
    internal void Adopt(string path, Libc.StatInfo created)
    {
        var handle = LockedOpen.OpenDescriptor(path, writable: false);
        try
        {
            var st = LockedOpen.StatOf(handle, path);
            if (st.Device != created.Device || st.Inode != created.Inode)
                throw new DiskImageException(ErrorKind.Locked, "cannot lock the new file: another process replaced it as it was created", path);
            FileLock.Acquire(handle, path, FileLockMode.Exclusive, "lock the new file");
            _held.Add(new Held(st.Device, st.Inode, true, handle));
        }
        catch
        {
            FileLock.ReleaseAndClose(handle);
            throw;
        }
    }

    /// <summary>Releases this scope's locks and makes the outer scope current again.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (var h in _held) FileLock.ReleaseAndClose(h.Handle);
        _held.Clear();
        s_current.Value = _outer;
    }
}
