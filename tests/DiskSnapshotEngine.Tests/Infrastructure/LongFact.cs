namespace DiskSnapshotEngine.Tests.Infrastructure;

/// <summary>
/// A fact too long for every run (minutes of work): skipped, with the reason, unless DSE_LONG_TESTS=1 is set
/// (README, "Long tests"). The skip shows in the summary, so a default run never reports it as passed.
/// </summary>
public sealed class LongFactAttribute : FactAttribute
{
    public const string Variable = "DSE_LONG_TESTS";

    /// <param name="linuxOnly">Also skipped, with that reason, on other systems.</param>
    public LongFactAttribute(bool linuxOnly = false)
    {
        if (linuxOnly && !OperatingSystem.IsLinux()) Skip = "Linux only";
        else if (Environment.GetEnvironmentVariable(Variable) != "1") Skip = $"long test: set {Variable}=1 to run it";
    }
}
