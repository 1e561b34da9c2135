using System.CommandLine;
using DiskSnapshotEngine.Cli.Commands;

namespace DiskSnapshotEngine.Cli;

/// <summary>
/// The one list of verbs (explicit: no reflection). To add a verb, write <c>Commands/XxxCommand.cs</c> with
/// <c>public static Command Build()</c> and add it to <see cref="Verbs"/>.
/// </summary>
internal static class CommandCatalog
{
    /// <summary>Name of the option, on every verb, that prints full stack traces for unexpected errors (also DSE_DEBUG=1).</summary>
    public const string VerboseOption = "--verbose";

    private static IEnumerable<Func<Command>> Verbs => new Func<Command>[]
    {
        CreateCommand.Build,
        InfoCommand.Build,
        WriteCommand.Build,
        ExportCommand.Build,
        CheckCommand.Build,
        DemoCommand.Build,
        CloneCommand.Build,
        MergeCommand.Build,
        RebaseCommand.Build,
        SnapshotCommand.Build,
        RollbackCommand.Build,
        CompactCommand.Build,
        ResetCommand.Build,
        SetIdentityCommand.Build,
        DetachCommand.Build,
        ResizeCommand.Build,
        MeasureCommand.Build,
        CompareCommand.Build,
        MapCommand.Build,
        ServeCommand.Build,
        MountCommand.Build,
        VmCommand.Build,
    };

    public static RootCommand BuildRoot()
    {
        var root = new RootCommand(
            "dse: work on virtual-disk images (VHDX, VDI, raw) offline: create, clone, snapshot, merge, inspect, export, check, serve over NBD, register.\n" +
            "Exit codes: 0 ok, 1 problems found, 2 usage error, 3-17 one per error kind, 18 disk changed but its .vbox not updated, 70 internal error, 130/143 interrupted (see README).");
        // A fresh option per root: symbols record their parents, and tests build roots in parallel.
        root.Options.Add(new Option<bool>(VerboseOption, "-v")
        {
            Description = "On an unexpected error, print the full exception (same as DSE_DEBUG=1).",
            Recursive = true,
        });
        foreach (var build in Verbs) root.Subcommands.Add(build());
        return root;
    }
}
