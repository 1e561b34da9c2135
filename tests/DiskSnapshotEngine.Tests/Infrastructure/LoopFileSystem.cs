namespace DiskSnapshotEngine.Tests.Infrastructure;

/// <summary>
/// A small file system made in a sparse file and loop-mounted for one test (XFS with reflink, a read-only ext4...), so
/// what the test checks is the kernel's own behaviour. Needs root, the mkfs tool and loop devices.
/// </summary>
public sealed class LoopFileSystem : IDisposable
{
    private readonly string _backing;

    private LoopFileSystem(string path, string backing) => (Path, _backing) = (path, backing);

    public string Path { get; }

    public string File(string name) => System.IO.Path.Combine(Path, name);

    /// <summary>Makes the file system with <paramref name="mkfs"/> and its arguments, and mounts it read-write.</summary>
    public static LoopFileSystem Create(int megabytes, string mkfs, params string[] mkfsArgs)
    {
        string id = Guid.NewGuid().ToString("N");
        string backing = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"dse-fs-{id}.img");
        string dir = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"dse-fs-{id}");
        using (var f = new FileStream(backing, FileMode.CreateNew)) f.SetLength((long)megabytes << 20);
        Directory.CreateDirectory(dir);
        ExternalTool.RunChecked(mkfs, [.. mkfsArgs, backing]);
        ExternalTool.RunChecked("mount", "-o", "loop", backing, dir);
        return new LoopFileSystem(dir, backing);
    }

    /// <summary>Unmounts it and mounts it again with <c>mount -o loop,OPTIONS</c> (for example <c>ro</c>).</summary>
    public void Remount(string options)
    {
        ExternalTool.RunChecked("umount", Path);
        ExternalTool.RunChecked("mount", "-o", "loop," + options, _backing, Path);
    }

    public void Dispose()
    {
        // Busy (a handle the test has not closed yet): detached now, freed by the kernel once closed; no mount is left.
        if (ExternalTool.Run("umount", Path).ExitCode != 0) ExternalTool.Run("umount", "-l", Path);
        try { Directory.Delete(Path, true); } catch (IOException) { }
        try { System.IO.File.Delete(_backing); } catch (IOException) { }
    }
}

/// <summary>
/// A fact that loop-mounts an ext4: skipped, with the reason, without root, mkfs.ext4, mount or loop devices, or one of
/// the peer tools the test also runs (its arguments).
/// </summary>
public sealed class RequiresLoopMountFactAttribute : FactAttribute
{
    public RequiresLoopMountFactAttribute(params string[] tools)
    {
        if (!OperatingSystem.IsLinux() || Environment.UserName != "root")
            Skip = "needs root on Linux to loop-mount a read-only ext4";
        else if (RequiresTool.Reason(tools) is { } peer)
            Skip = peer;
        else if (RequiresTool.Reason(new[] { "mkfs.ext4", "mount", "umount" }) is { } missing)
            Skip = missing + " (e2fsprogs, mount)";
        else if (!System.IO.File.Exists("/dev/loop-control"))
            Skip = "no loop devices (/dev/loop-control) to mount the ext4 image on";
    }
}
