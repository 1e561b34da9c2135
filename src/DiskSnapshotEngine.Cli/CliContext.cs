using System.CommandLine;
using DiskSnapshotEngine.Errors;

namespace DiskSnapshotEngine.Cli;

/// <summary>
/// What a verb's action gets: the parsed command line, the streams, the cancellation token. A verb run by
/// <see cref="DirectDispatch"/> has no parse result (start-up time), only the three common flags.
/// </summary>
internal sealed class CliContext
{
    private readonly ParseResult? _parse;

    public CliContext(ParseResult parse, CliHost host, CancellationToken cancellationToken)
        : this(host, CommandCatalog.Flag(parse, CommandCatalog.JsonOption),
            parse.GetValue<bool>(CommandCatalog.QuietOption), parse.GetValue<bool>(CommandCatalog.VerboseOption), cancellationToken) =>
        _parse = parse;

    /// <summary>A context without a parse result (<see cref="DirectDispatch"/>).</summary>
    public CliContext(CliHost host, bool json, bool quiet, bool verbose, CancellationToken cancellationToken)
    {
        Host = host;
        CancellationToken = cancellationToken;
        Json = json;
        Quiet = quiet;
        Verbose = verbose;
    }

    /// <summary>The parsed command line (only verbs run through the parser have one).</summary>
    public ParseResult Parse => _parse ?? throw new InvalidOperationException("this verb was run without the parser");

    public CliHost Host { get; }
    public CancellationToken CancellationToken { get; }
    public TextWriter Out => Host.Out;
    public TextWriter Error => Host.Error;

    /// <summary>True when <c>--json</c> was given: stdout carries one JSON document, stderr JSON lines.</summary>
    public bool Json { get; }

    /// <summary>True when <c>--quiet</c> was given: no progress.</summary>
    public bool Quiet { get; }

    /// <summary>True when <c>--verbose</c> was given: format-specific fields, stack traces.</summary>
    public bool Verbose { get; }

    /// <summary>True once the verb opened images only to read them, without -U, and takes -U (see <see cref="ForceShareHint"/>).</summary>
    public bool OffersForceShare { get; set; }

    /// <summary>The value of an option or argument of the verb.</summary>
    public T? Get<T>(Option<T> option) => Parse.GetValue(option);

    /// <inheritdoc cref="Get{T}(Option{T})"/>
    public T? Get<T>(Argument<T> argument) => Parse.GetValue(argument);

    /// <summary>Writes a value as JSON (camelCase, indented) on stdout.</summary>
    public void WriteJson<T>(T value) => Out.WriteLine(Output.Json.Serialize(value));

    /// <summary>The verb's result: <paramref name="json"/> with <c>--json</c>, else the line <paramref name="text"/>.</summary>
    public void Result<T>(T json, string text)
    {
        if (Json) WriteJson(json);
        else Out.WriteLine(text);
    }

    /// <summary>As <see cref="Result{T}(T, string)"/>, building the JSON only when it is written (it may open files).</summary>
    public void Result<T>(Func<T> json, string text)
    {
        if (Json) WriteJson(json());
        else Out.WriteLine(text);
    }

    /// <summary>A remark that is not the command's output (stderr), so stdout stays parseable.</summary>
    public void Note(string message) => Remark("note", message);

    /// <summary>A warning about the command's result (stderr).</summary>
    public void Warn(string message) => Remark("warning", message);

    // With --json stderr stays machine-readable: one JSON object per line, as errors are.
    private void Remark(string kind, string message) => Error.WriteLine(Json
        ? Output.Json.OneLineOf(new Dictionary<string, MessageView> { [kind] = new(message) })
        : $"dse: {kind}: {message}");
}

/// <summary>A note or warning with --json: <c>{"note":{"message":"..."}}</c>.</summary>
internal sealed record MessageView(string Message);

/// <summary>Attaches verb bodies to commands, giving them a <see cref="CliContext"/>.</summary>
internal static class VerbAction
{
    public static void Set(Command command, Func<CliContext, int> body) => Set(command, context => Task.FromResult(body(context)));

    public static void Set(Command command, Func<CliContext, Task<int>> body) =>
        command.SetAction(async (parse, token) =>
        {
            var context = new CliContext(parse, CliApp.Host, token);
            try { return await body(context).ConfigureAwait(false); }
            catch (DiskImageException e) when (context.OffersForceShare) { throw ForceShareHint.Add(e, offered: true); }
        });
}
