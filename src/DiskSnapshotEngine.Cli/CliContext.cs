using System.CommandLine;

namespace DiskSnapshotEngine.Cli;

/// <summary>What a verb's action gets: the parsed command line, the streams, the cancellation token.</summary>
internal sealed class CliContext(ParseResult parse, CliHost host, CancellationToken cancellationToken)
{
    public ParseResult Parse { get; } = parse;
    public CliHost Host { get; } = host;
    public CancellationToken CancellationToken { get; } = cancellationToken;
    public TextWriter Out => Host.Out;
    public TextWriter Error => Host.Error;

    /// <summary>True when <c>--json</c> was given: stdout carries one JSON document, stderr JSON lines.</summary>
    public bool Json => CommandCatalog.Flag(Parse, CommandCatalog.JsonOption);

    /// <summary>True when <c>--quiet</c> was given: no progress.</summary>
    public bool Quiet => Parse.GetValue<bool>(CommandCatalog.QuietOption);

    /// <summary>True when <c>--verbose</c> was given: format-specific fields, stack traces.</summary>
    public bool Verbose => Parse.GetValue<bool>(CommandCatalog.VerboseOption);

    /// <summary>The value of an option or argument of the verb.</summary>
    public T? Get<T>(Option<T> option) => Parse.GetValue(option);

    /// <inheritdoc cref="Get{T}(Option{T})"/>
    public T? Get<T>(Argument<T> argument) => Parse.GetValue(argument);

    /// <summary>Writes a value as JSON (camelCase, indented) on stdout.</summary>
    public void WriteJson<T>(T value) => Out.WriteLine(Output.Json.Serialize(value));

    /// <summary>The verb's result: <paramref name="json"/> with <c>--json</c>, else the line <paramref name="text"/>.</summary>
    public void Result(object json, string text)
    {
        if (Json) WriteJson(json);
        else Out.WriteLine(text);
    }

    /// <summary>A remark that is not the command's output (stderr), so stdout stays parseable.</summary>
    public void Note(string message) => Remark("note", message);

    /// <summary>A warning about the command's result (stderr).</summary>
    public void Warn(string message) => Remark("warning", message);

    // With --json stderr stays machine-readable: one JSON object per line, as errors are.
    private void Remark(string kind, string message) => Error.WriteLine(Json
        ? System.Text.Json.JsonSerializer.Serialize(new Dictionary<string, object> { [kind] = new { message } }, Output.Json.OneLine)
        : $"dse: {kind}: {message}");
}

/// <summary>Attaches verb bodies to commands, giving them a <see cref="CliContext"/>.</summary>
internal static class VerbAction
{
    public static void Set(Command command, Func<CliContext, int> body) =>
        command.SetAction((parse, token) => Task.FromResult(body(new CliContext(parse, CliApp.Host, token))));

    public static void Set(Command command, Func<CliContext, Task<int>> body) =>
        command.SetAction((parse, token) => body(new CliContext(parse, CliApp.Host, token)));
}
