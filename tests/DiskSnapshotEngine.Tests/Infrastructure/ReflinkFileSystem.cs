namespace DiskSnapshotEngine.Tests.Infrastructure;

/// <summary>
/// A small XFS with reflink (<c>mkfs.xfs -m reflink=1</c>) in a sparse file, loop-mounted for one test, so shared
/// extents are the kernel's own. Needs root, mkfs.xfs and filefrag: <see cref="RequiresReflinkFactAttribute"/>.
/// </summary>
public static class ReflinkFileSystem
{
    public static LoopFileSystem Mount(int megabytes) => LoopFileSystem.Create(megabytes, "mkfs.xfs", "-q", "-m", "reflink=1");

    /// <summary>Bytes of <paramref name="path"/> whose extents filefrag reports as shared.</summary>
    public static long SharedBytes(string path)
    {
        // filefrag -v rows: "ext: logical..: physical..: length: expected: flags", lengths in 4 KiB blocks here.
        long blocks = 0;
        foreach (var line in ExternalTool.RunChecked("filefrag", "-v", "-b4096", path).Split('\n'))
        {
            var cols = line.Split(':');
            if (cols.Length >= 5 && line.Contains("shared") && long.TryParse(cols[3].Trim(), out long n)) blocks += n;
        }
        return blocks * 4096;
    }
}

/// <summary>A fact that mounts an XFS with reflink: skipped, with the reason, without root, mkfs.xfs, filefrag or loop devices.</summary>
public sealed class RequiresReflinkFactAttribute : FactAttribute
{
    public RequiresReflinkFactAttribute()
    {
        if (!OperatingSystem.IsLinux() || Environment.UserName != "root")
            Skip = "needs root on Linux to loop-mount an XFS with reflink";
        else if (RequiresTool.Reason(new[] { "mkfs.xfs", "filefrag", "mount" }) is { } missing)
            Skip = missing + " (xfsprogs, e2fsprogs, mount)";
        else if (!System.IO.File.Exists("/dev/loop-control"))
            Skip = "no loop devices (/dev/loop-control) to mount the XFS image on";
    }
}
