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

    /// <summary>The value of an option or argument of the verb.</summary>
    public T? Get<T>(Option<T> option) => Parse.GetValue(option);

    /// <inheritdoc cref="Get{T}(Option{T})"/>
    public T? Get<T>(Argument<T> argument) => Parse.GetValue(argument);

    /// <summary>Writes a value as JSON (camelCase, indented) on stdout.</summary>
    public void WriteJson<T>(T value) => Out.WriteLine(Output.Json.Serialize(value));

    /// <summary>A remark that is not the command's output (stderr), so stdout stays parseable.</summary>
    public void Note(string message) => Error.WriteLine($"dse: note: {message}");

    /// <summary>A warning about the command's result (stderr).</summary>
    public void Warn(string message) => Error.WriteLine($"dse: warning: {message}");
}

/// <summary>Attaches verb bodies to commands, giving them a <see cref="CliContext"/>.</summary>
internal static class VerbAction
{
    public static void Set(Command command, Func<CliContext, int> body) =>
        command.SetAction((parse, token) => Task.FromResult(body(new CliContext(parse, CliApp.Host, token))));

    public static void Set(Command command, Func<CliContext, Task<int>> body) =>
        command.SetAction((parse, token) => body(new CliContext(parse, CliApp.Host, token)));
}
