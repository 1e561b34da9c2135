using System.Diagnostics;

namespace DiskSnapshotEngine.Tests.Infrastructure;

/// <summary>
/// A real, tiny file system (tmpfs of a few MiB) mounted for a test, so "disk full" is the kernel's ENOSPC and not a
/// simulation. Needs root (CI runs as root); <see cref="TryMount"/> returns null elsewhere and the test says so.
/// </summary>
public sealed class SmallFileSystem : IDisposable
{
    private SmallFileSystem(string path) => Path = path;

    public string Path { get; }

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public static SmallFileSystem? TryMount(int megabytes)
    {
        if (!OperatingSystem.IsLinux() || Environment.UserName != "root") return null;
        var dir = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"dse-smallfs-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        var (code, _, _) = ExternalTool.Run("mount", "-t", "tmpfs", "-o", $"size={megabytes}m", "tmpfs", dir);
        if (code != 0)
        {
            Directory.Delete(dir);
            return null;
        }
        return new SmallFileSystem(dir);
    }

    /// <summary>Makes the file system read-only (EROFS for every write from now on).</summary>
    public void RemountReadOnly() => ExternalTool.RunChecked("mount", "-o", "remount,ro", Path);

    public void Dispose()
    {
        ExternalTool.Run("umount", "-l", Path);
        try { Directory.Delete(Path, true); } catch (IOException) { }
    }
}

/// <summary>A fact skipped, with the reason, where a tmpfs cannot be mounted (not root).</summary>
public sealed class RequiresMountFactAttribute : FactAttribute
{
    public RequiresMountFactAttribute()
    {
        if (!OperatingSystem.IsLinux() || Environment.UserName != "root")
            Skip = "needs root to mount a small tmpfs (CI runs as root); the fault-injecting tests cover disk-full otherwise";
    }
}

/// <summary>A theory skipped, with the reason, where a tmpfs cannot be mounted (not root).</summary>
public sealed class RequiresMountTheoryAttribute : TheoryAttribute
{
    public RequiresMountTheoryAttribute()
    {
        if (!OperatingSystem.IsLinux() || Environment.UserName != "root")
            Skip = "needs root to mount a tmpfs (CI runs as root)";
    }
}
