namespace DiskSnapshotEngine.Tests.Infrastructure;

/// <summary>A fact about Linux behaviour (OFD locks, /proc, fsync of folders, ownership), skipped elsewhere with the reason.</summary>
public sealed class LinuxFactAttribute : FactAttribute
{
    public LinuxFactAttribute(string reason = "tests Linux behaviour")
    {
        if (!OperatingSystem.IsLinux()) Skip = $"Linux only: {reason}";
    }
}
