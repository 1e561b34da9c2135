namespace DiskSnapshotEngine.Tests.Infrastructure;

/// <summary>A fact about Linux behaviour (OFD locks, /proc, fsync of folders), skipped elsewhere with the reason.</summary>
public sealed class LinuxFactAttribute : FactAttribute
{
    public LinuxFactAttribute(string reason = "tests Linux behaviour")
    {
        if (!OperatingSystem.IsLinux()) Skip = $"Linux only: {reason}";
    }
}

/// <summary>A fact that needs root on Linux (giving files to other users), skipped otherwise with the reason.</summary>
public sealed class RootFactAttribute : FactAttribute
{
    public RootFactAttribute(string reason)
    {
        if (!OperatingSystem.IsLinux()) Skip = $"Linux only: {reason}";
        else if (Environment.UserName != "root") Skip = $"needs root: {reason}";
    }
}

/// <summary>A theory about Linux behaviour (signals, /proc), skipped elsewhere with the reason.</summary>
public sealed class LinuxTheoryAttribute : TheoryAttribute
{
    public LinuxTheoryAttribute(string reason = "tests Linux behaviour")
    {
        if (!OperatingSystem.IsLinux()) Skip = $"Linux only: {reason}";
    }
}
