using DiskSnapshotEngine.Tests.Cli;

namespace DiskSnapshotEngine.Tests.Infrastructure;

/// <summary>Why a test of the Native AOT dse is skipped: there is none (tests/run.sh publishes one; dotnet test alone does not).</summary>
internal static class AotBinary
{
    public static string? SkipReason => CliRunner.AotPath is null
        ? "no Native AOT dse: tests/run.sh publishes one and names it in DSE_AOT (dotnet test alone does not)" : null;
}

/// <summary>A fact about the Native AOT dse, skipped with the reason when there is none.</summary>
public sealed class AotFactAttribute : FactAttribute
{
    public AotFactAttribute() => Skip = AotBinary.SkipReason;
}

/// <summary>A theory about the Native AOT dse, skipped with the reason when there is none.</summary>
public sealed class AotTheoryAttribute : TheoryAttribute
{
    public AotTheoryAttribute() => Skip = AotBinary.SkipReason;
}
