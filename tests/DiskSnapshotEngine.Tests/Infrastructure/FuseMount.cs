using System.Diagnostics;

namespace DiskSnapshotEngine.Tests.Infrastructure;

/// <summary>
/// A FUSE mount made by a peer tool (vhdimount), unmounted on dispose. Every process wait is bounded, and the files it
/// exposes are read by a child process (cp) that is killed on timeout: a hung FUSE read must fail the test, never hang it.
/// </summary>
public sealed class FuseMount : IDisposable
{
    private static readonly TimeSpan s_toolTimeout = TimeSpan.FromSeconds(60);
    private bool _mounted;

    private FuseMount(string mountPoint)
    {
        MountPoint = mountPoint;
        _mounted = true;
    }

    public string MountPoint { get; }

    /// <summary>Tool that unmounts a FUSE mount as root: umount (util-linux), else fusermount3/fusermount (fuse3/fuse).</summary>
    public static string? UnmountTool => new[] { "umount", "fusermount3", "fusermount" }.FirstOrDefault(ExternalTool.Has);

    /// <summary>Why FUSE mounts cannot be made here, or null when they can.</summary>
    public static string? Unavailable(string mountTool)
    {
        if (!OperatingSystem.IsLinux()) return "FUSE mounts need Linux";
        if (!ExternalTool.Has(mountTool)) return $"needs {mountTool} on the PATH (apt-get install libvhdi-utils)";
        if (!File.Exists("/dev/fuse")) return "needs /dev/fuse (FUSE is not available in this container)";
        if (!Environment.IsPrivilegedProcess) return "needs root to mount FUSE file systems";
        if (UnmountTool is null) return "needs umount, fusermount3 or fusermount on the PATH to unmount";
        return null;
    }

    /// <summary>Runs <paramref name="tool"/> image mountPoint, which mounts and returns (the FUSE daemon stays in the background).</summary>
    public static FuseMount Mount(string tool, string image, string mountPoint)
    {
        Directory.CreateDirectory(mountPoint);
        var (code, stdout, stderr) = Run(tool, s_toolTimeout, image, mountPoint);
        if (code != 0)
        {
            // A failed start may still have left a mount behind.
            TryUnmount(mountPoint);
            throw new Xunit.Sdk.XunitException($"{tool} {image} {mountPoint} exited {code}\nstdout: {stdout}\nstderr: {stderr}");
        }
        var mount = new FuseMount(mountPoint);
        if (!IsMountPoint(mountPoint))
        {
            mount.Dispose();
            throw new Xunit.Sdk.XunitException($"{tool} exited 0 but {mountPoint} is not a mount point\nstderr: {stderr}");
        }
        return mount;
    }

    /// <summary>Copies a file of the mount to a plain file with cp, killed after the timeout.</summary>
    public void CopyOut(string name, string destination)
    {
        var (code, stdout, stderr) = Run("cp", s_toolTimeout, Path.Combine(MountPoint, name), destination);
        if (code != 0) throw new Xunit.Sdk.XunitException($"cp {name} out of {MountPoint} exited {code}\nstdout: {stdout}\nstderr: {stderr}");
    }

    /// <summary>Names of the files the mount exposes (listed by a child process, bounded).</summary>
    public IReadOnlyList<string> List()
    {
        var (code, stdout, stderr) = Run("ls", s_toolTimeout, "-1", MountPoint);
        if (code != 0) throw new Xunit.Sdk.XunitException($"ls {MountPoint} exited {code}: {stderr}");
        return stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
    }

    public void Dispose()
    {
        if (!_mounted) return;
        _mounted = false;
        TryUnmount(MountPoint);
    }

    private static void TryUnmount(string mountPoint)
    {
        if (!IsMountPoint(mountPoint)) return;
        string tool = UnmountTool!;
        string[] args = tool == "umount" ? [mountPoint] : ["-u", mountPoint];
        if (Run(tool, s_toolTimeout, args).ExitCode == 0) return;
        // Busy or stuck: detach lazily so the temp folder can go and no later test sees the mount.
        string[] lazy = tool == "umount" ? ["-l", mountPoint] : ["-u", "-z", mountPoint];
        Run(tool, s_toolTimeout, lazy);
    }

    private static bool IsMountPoint(string path)
    {
        string full = Path.GetFullPath(path).TrimEnd('/');
        // /proc/self/mountinfo field 5 is the mount point, with space, tab, newline and backslash octal-escaped.
        foreach (var line in File.ReadLines("/proc/self/mountinfo"))
        {
            var fields = line.Split(' ');
            if (fields.Length > 4 && Unescape(fields[4]) == full) return true;
        }
        return false;
    }

    private static string Unescape(string s) =>
        s.Replace("\\040", " ").Replace("\\011", "\t").Replace("\\012", "\n").Replace("\\134", "\\");

    /// <summary>
    /// Runs a tool with a hard timeout (killed with its process tree). Output is collected for a few seconds after the
    /// exit only: a daemon the tool leaves behind may hold the pipes open.
    /// </summary>
    public static (int ExitCode, string StdOut, string StdErr) Run(string tool, TimeSpan timeout, params string[] args)
    {
        var psi = new ProcessStartInfo(ExternalTool.Find(tool) ?? tool)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        p.StandardInput.Close();
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeout))
        {
            p.Kill(entireProcessTree: true);
            p.WaitForExit(TimeSpan.FromSeconds(10));
            throw new TimeoutException($"{tool} {string.Join(' ', args)} did not finish in {timeout.TotalSeconds:0} s");
        }
        string Collected(Task<string> t) => t.Wait(TimeSpan.FromSeconds(5)) ? t.Result : "(output still held open by a background process)";
        return (p.ExitCode, Collected(stdout), Collected(stderr));
    }
}

/// <summary>A fact skipped, with the reason, when FUSE mounts by <c>tool</c> cannot be made here (no tool, no /dev/fuse, not root).</summary>
public sealed class RequiresFuseMountFactAttribute : FactAttribute
{
    public RequiresFuseMountFactAttribute(string tool)
    {
        if (FuseMount.Unavailable(tool) is { } reason) Skip = reason;
    }
}
