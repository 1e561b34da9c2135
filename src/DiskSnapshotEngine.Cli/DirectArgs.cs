namespace DiskSnapshotEngine.Cli;

/// <summary>
/// The words of a plain verb command line, read without the command-line parser (start-up time): the verb's
/// arguments, each named option at most once with its value, flags. It accepts only what the parser reads the same
/// way without a doubt; anything else (help, also as /? or /h, an unknown or repeated option, <c>--opt=value</c>, a flag followed by
/// true/false, a response file, a directive, <c>--</c>, a missing or extra argument) gives null, and the parser, with
/// its own errors and help, reads the line instead.
/// </summary>
internal sealed class DirectArgs
{
    private static readonly string[] s_common = [CommandCatalog.JsonOption, CommandCatalog.QuietOption, "-q", CommandCatalog.VerboseOption];
    private readonly Dictionary<string, string> _values = new(StringComparer.Ordinal);
    private readonly HashSet<string> _flags = new(StringComparer.Ordinal);
    private readonly List<string> _arguments = new();

    private DirectArgs()
    {
    }

    /// <summary>The verb's arguments, in order.</summary>
    public IReadOnlyList<string> Arguments => _arguments;

    /// <summary>True when <c>--json</c> was given.</summary>
    public bool Json => Flag(CommandCatalog.JsonOption);

    /// <summary>True when <c>--quiet</c> or <c>-q</c> was given.</summary>
    public bool Quiet => Flag(CommandCatalog.QuietOption) || Flag("-q");

    /// <summary>True when <c>--verbose</c> was given.</summary>
    public bool Verbose => Flag(CommandCatalog.VerboseOption);

    /// <summary>True when the flag was given.</summary>
    public bool Flag(string name) => _flags.Contains(name);

    /// <summary>The option's value, or null when it was not given.</summary>
    public string? Value(string name) => _values.GetValueOrDefault(name);

    /// <summary>
    /// Reads <paramref name="args"/> (the verb first) when it has exactly <paramref name="arguments"/> arguments and
    /// only the given options (plus --json, --quiet/-q, --verbose); else null (see the type).
    /// </summary>
    public static DirectArgs? Read(string[] args, int arguments, ReadOnlySpan<string> flags, ReadOnlySpan<string> valued)
    {
        var read = new DirectArgs();
        for (int i = 1; i < args.Length; i++)
        {
            string word = args[i];
            if (ParserWord(word)) return null;
            if (word.Length > 1 && word[0] == '-')
            {
                if (valued.Contains(word))
                {
                    // The value is the next word, unless the parser would read that as an option (or it is missing).
                    if (i + 1 >= args.Length || read._values.ContainsKey(word)) return null;
                    string value = args[++i];
                    if (ParserWord(value) || (value.Length > 1 && value[0] == '-')) return null;
                    read._values.Add(word, value);
                }
                else if (flags.Contains(word) || s_common.AsSpan().Contains(word))
                {
                    // A flag takes an optional true/false after it; such lines are left to the parser.
                    if (!read._flags.Add(word) || (i + 1 < args.Length && bool.TryParse(args[i + 1], out _))) return null;
                }
                else return null;
            }
            else read._arguments.Add(word);
        }
        if (read.Flag(CommandCatalog.QuietOption) && read.Flag("-q")) return null;
        return read._arguments.Count == arguments ? read : null;
    }

    // An empty word, a response file (@), a directive ([), and "/?" or "/h", the parser's help without a dash (also as a
    // file's name or an option's value: the parser reads them as help wherever they stand).
    private static bool ParserWord(string word) => word.Length == 0 || word[0] is '@' or '[' || word is "/?" or "/h";
}
