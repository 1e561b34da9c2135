using System.CommandLine;
using DiskSnapshotEngine.Cli.Commands;

namespace DiskSnapshotEngine.Cli;

/// <summary>
/// The one list of verbs (explicit: no reflection). To add a verb, write <c>Commands/XxxCommand.cs</c> with
/// <c>public static Command Build()</c> and add it, with its name, to <see cref="Verbs"/>.
/// </summary>
internal static class CommandCatalog
{
    /// <summary>Name of the option, on every verb, that shows format-specific fields and full stack traces for unexpected errors (also DSE_DEBUG=1).</summary>
    public const string VerboseOption = "--verbose";

    /// <summary>Name of the option, on every verb, that silences progress.</summary>
    public const string QuietOption = "--quiet";

    /// <summary>Name of the option every verb has (added here when the verb does not declare it): JSON output and JSON errors.</summary>
    public const string JsonOption = "--json";

    /// <summary>Every verb, by the name its command carries (a test keeps the two equal).</summary>
    internal static readonly (string Name, Func<Command> Build)[] Verbs =
    {
        ("create", CreateCommand.Build),
        ("info", InfoCommand.Build),
        ("write", WriteCommand.Build),
        ("export", ExportCommand.Build),
        ("check", CheckCommand.Build),
        ("demo", DemoCommand.Build),
        ("clone", CloneCommand.Build),
        ("merge", MergeCommand.Build),
        ("rebase", RebaseCommand.Build),
        ("snapshot", SnapshotCommand.Build),
        ("rollback", RollbackCommand.Build),
        ("compact", CompactCommand.Build),
        ("reset", ResetCommand.Build),
        ("set-identity", SetIdentityCommand.Build),
        ("detach", DetachCommand.Build),
        ("resize", ResizeCommand.Build),
        ("measure", MeasureCommand.Build),
        ("compare", CompareCommand.Build),
        ("map", MapCommand.Build),
        ("seal", SealCommand.BuildSeal),
        ("unseal", SealCommand.BuildUnseal),
        ("serve", ServeCommand.Build),
        ("mount", MountCommand.Build),
        ("vm", VmCommand.Build),
    };

    /// <summary>
    /// The root command. Given the first argument, only that verb is built when it names one: start-up then pays for
    /// the verb that runs, not for all of them (the root's help, and anything else, gets every verb).
    /// </summary>
    public static RootCommand BuildRoot(string? firstArgument = null)
    {
        var root = new RootCommand(
            "dse: work on virtual-disk images (VHDX, VDI, qcow2, VHD, raw) offline: create, clone, snapshot, merge, inspect, export, check, serve over NBD, register.\n" +
            "Exit codes: 0 ok, 1 problems found, 2 usage error, 3-17 one per error kind, 18 disk changed but its .vbox not updated, 70 internal error, 130/143 interrupted (see README).");
        // A fresh option per root: symbols record their parents, and tests build roots in parallel.
        // No -v: users of other tools expect it to mean --version, which is spelled out (as qemu-img does).
        root.Options.Add(new Option<bool>(VerboseOption)
        {
            Description = "Show format-specific fields (info) and, on an unexpected error, the full exception (same as DSE_DEBUG=1).",
            Recursive = true,
        });
        root.Options.Add(new Option<bool>(QuietOption, "-q") { Description = "Show no progress (it is shown on stderr only when stderr is a terminal).", Recursive = true });
        var only = Array.Find(Verbs, v => v.Name == firstArgument);
        if (only.Build is not null) root.Subcommands.Add(only.Build());
        else foreach (var (_, build) in Verbs) root.Subcommands.Add(build());
        // Every verb, including those added later, answers --json: a verb that does not declare it gets it here.
        foreach (var verb in Leaves(root))
            if (!verb.Options.Any(o => o.Name == JsonOption)) verb.Options.Add(CommonOptions.Json());
        return root;
    }

    /// <summary>Every runnable verb (a command without subcommands), depth first.</summary>
    public static IEnumerable<Command> Leaves(Command command) =>
        command.Subcommands.Count == 0 ? [command] : command.Subcommands.SelectMany(Leaves);

    /// <summary>The value of a boolean option of the parsed verb, found by name (false when the verb has no such option).</summary>
    public static bool Flag(ParseResult parse, string name) =>
        parse.CommandResult.Command.Options.FirstOrDefault(o => o.Name == name) is Option<bool> option && parse.GetValue(option);
}
