using DiskSnapshotEngine.Hypervisors.Model;
using DiskSnapshotEngine.Hypervisors.Processes;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Hypervisors;

/// <summary>Hand-built disk states (SnapshotCatalogVirtualBoxTests builds them from real dse snapshots) and the fake for tools that cannot run here.</summary>
internal static class HypervisorTestData
{
    public static readonly Guid Base = Guid.Parse("6a1d1f0e-0000-4000-8000-000000000001");
    public static readonly Guid D1 = Guid.Parse("6a1d1f0e-0000-4000-8000-000000000002");
    public static readonly Guid D2 = Guid.Parse("6a1d1f0e-0000-4000-8000-000000000003");
    public static readonly Guid D3 = Guid.Parse("6a1d1f0e-0000-4000-8000-000000000004");
    public static readonly Guid S1 = Guid.Parse("5a1d1f0e-0000-4000-8000-0000000000a1");
    public static readonly Guid S2 = Guid.Parse("5a1d1f0e-0000-4000-8000-0000000000a2");

    /// <summary>
    /// Three layers deep with a branch, as VirtualBox leaves it after: snapshot S1 (freezes base), snapshot S2 (freezes D1,
    /// current D2), restore S1 (new current D3 beside D1). Current state D3, current snapshot S1.
    /// </summary>
    public static VmDiskState ThreeDeepTwoSnapshotsAndBranch(string folder)
    {
        string P(string n) => System.IO.Path.Combine(folder, n);
        var d2 = new MediumInfo(D2, P("Snapshots/{d2}.vdi"), MediumFormats.Vdi, 1L << 30, Array.Empty<MediumInfo>());
        var d1 = new MediumInfo(D1, P("Snapshots/{d1}.vdi"), MediumFormats.Vdi, 1L << 30, new[] { d2 });
        var d3 = new MediumInfo(D3, P("Snapshots/{d3} it's.vdi"), MediumFormats.Vdi, 1L << 30, Array.Empty<MediumInfo>());
        var root = new MediumInfo(Base, P("base disk.vdi"), MediumFormats.Vdi, 1L << 30, new[] { d1, d3 });
        var s2 = new SnapshotInfo(S2, "after install", "second & <last>", new DateTimeOffset(2026, 11, 20, 10, 0, 0, TimeSpan.Zero), D1, Array.Empty<SnapshotInfo>());
        var s1 = new SnapshotInfo(S1, "clean", null, new DateTimeOffset(2026, 11, 19, 9, 30, 0, TimeSpan.FromHours(2)), Base, new[] { s2 });
        return new VmDiskState(root, D3, new[] { s1 }, S1);
    }

    public static string SchemaPath =>
        System.IO.Path.Combine(SharedFixtures.SharedDirectory ?? throw new InvalidOperationException("no ../shared"), "vbox", "VirtualBox-settings.xsd");

    public static string SamplesDirectory =>
        System.IO.Path.Combine(SharedFixtures.SharedDirectory ?? throw new InvalidOperationException("no ../shared"), "vbox", "samples");

    /// <summary>Runs xmllint against the real VirtualBox schema and fails with its message when the file does not validate.</summary>
    public static void AssertValidatesAgainstVirtualBoxSchema(string file)
    {
        var (code, o, e) = ExternalTool.Run("xmllint", "--noout", "--schema", SchemaPath, file);
        Assert.True(code == 0, $"xmllint rejected {file} (exit {code}):\n{e}\n{o}\n---\n{File.ReadAllText(file)}");
    }
}

/// <summary>
/// Stands in for VBoxManage and Hyper-V's PowerShell, which cannot run on this Linux machine. It records each command
/// and answers with a scripted result; real tools (xmllint, virsh) are never faked.
/// </summary>
internal sealed class FakeCommandRunner : ICommandRunner
{
    private readonly HashSet<string> _available;
    private readonly Func<ExternalCommand, CommandResult> _answer;

    public FakeCommandRunner(IEnumerable<string> available, Func<ExternalCommand, CommandResult>? answer = null)
    {
        _available = new HashSet<string>(available, StringComparer.Ordinal);
        _answer = answer ?? (_ => new CommandResult(0, "", ""));
    }

    public List<ExternalCommand> Ran { get; } = new();

    public bool IsAvailable(string program) => _available.Contains(program);

    public CommandResult Run(ExternalCommand command, TimeSpan? timeout = null)
    {
        Ran.Add(command);
        return _answer(command);
    }
}

/// <summary>A fact for the shared VirtualBox schema and samples that also needs xmllint.</summary>
public sealed class RequiresVboxSchemaFactAttribute : FactAttribute
{
    /// <param name="needsXmllint">Skipped without xmllint on the PATH.</param>
    /// <param name="withoutVBoxManage">Skipped where VBoxManage is installed (the test would register a real VM there).</param>
    public RequiresVboxSchemaFactAttribute(bool needsXmllint = true, bool withoutVBoxManage = false)
    {
        if (SharedFixtures.SharedDirectory is null || !File.Exists(System.IO.Path.Combine(SharedFixtures.SharedDirectory, "vbox", "VirtualBox-settings.xsd")))
            Skip = "../shared/vbox is not beside the checkout (set DSE_SHARED_DIR to point at shared/)";
        else if (needsXmllint && !ExternalTool.Has("xmllint"))
            Skip = "needs xmllint on the PATH (apt-get install libxml2-utils)";
        else if (withoutVBoxManage && DiskSnapshotEngine.Hypervisors.Processes.ProcessCommandRunner.FindOnPath("VBoxManage") is not null)
            Skip = "VBoxManage is installed: the test would register a real VM on this machine";
    }
}
