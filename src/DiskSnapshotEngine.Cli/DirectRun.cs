using DiskSnapshotEngine.Cli.Commands;

namespace DiskSnapshotEngine.Cli;

/// <summary>
/// A plain command line of a common verb (clone, export, create, write, merge), run without building the command
/// tree: start-up pays neither for System.CommandLine nor for the verbs that do not run. Each verb's <c>Direct</c>
/// accepts only the lines the parser would read the same way and whose values it would accept (see
/// <see cref="DirectArgs"/>); every other line, help and every error of the parser's go through the parser.
/// </summary>
internal sealed class DirectRun(DirectArgs args, Func<CliContext, Task<int>> body)
{
    /// <summary>The words read.</summary>
    public DirectArgs Args { get; } = args;

    /// <summary>Runs the verb with the given context.</summary>
    public Func<CliContext, Task<int>> Body { get; } = body;

    /// <summary>The direct run of <paramref name="args"/>, or null when it needs the parser.</summary>
    public static DirectRun? Match(string[] args) => args.Length < 2 ? null : args[0] switch
    {
        "clone" => CloneCommand.Direct(args),
        "export" => ExportCommand.Direct(args),
        "create" => CreateCommand.Direct(args),
        "write" => WriteCommand.Direct(args),
        "merge" => MergeCommand.Direct(args),
        _ => null,
    };

    /// <summary>The open options of a verb given no chain option (what <see cref="ChainOptions"/> makes of none).</summary>
    public static OpenOptions NoChainOptions(bool writable) => new() { Writable = writable };

    /// <summary>True when <paramref name="name"/> is absent or a format --format accepts.</summary>
    public static bool IsFormat(string? name) => name is null || Array.IndexOf(FormatOption.Names, name) >= 0;

    /// <summary>True when <paramref name="value"/> is absent or one of the <paramref name="names"/> the parser's option accepts (AcceptOnlyFromAmong of the same list).</summary>
    public static bool IsOneOf(string? value, string[] names) => value is null || Array.IndexOf(names, value) >= 0;

    /// <summary>True when <paramref name="text"/> is absent or a size the parser's SIZE option accepts (a positive one unless <paramref name="allowZero"/>).</summary>
    public static bool TrySize(string? text, out long? size, bool allowZero = false)
    {
        size = null;
        if (text is null) return true;
        if (!SizeParser.TryParseOption(text, allowZero, out long value, out _)) return false;
        size = value;
        return true;
    }
}
