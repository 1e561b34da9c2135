namespace DiskSnapshotEngine.Cli;

/// <summary>
/// The process's standard streams as the verbs see them. The real process uses the console; tests run the CLI
/// in-process with in-memory streams.
/// </summary>
internal sealed class CliHost
{
    /// <summary>Human and JSON output.</summary>
    public required TextWriter Out { get; init; }

    /// <summary>Errors, warnings, notes.</summary>
    public required TextWriter Error { get; init; }

    /// <summary>Opens stdin as bytes (<c>write --input -</c>).</summary>
    public required Func<Stream> OpenStdin { get; init; }

    /// <summary>Opens stdout as bytes (<c>export IMAGE -</c>); <see cref="Out"/> is flushed first.</summary>
    public required Func<Stream> OpenStdout { get; init; }

    /// <summary>True when stdout is a terminal.</summary>
    public bool OutputIsTerminal { get; init; }

    /// <summary>True when stderr is a terminal: progress is shown (on stderr) only then.</summary>
    public bool ErrorIsTerminal { get; init; }

    /// <summary>The real console.</summary>
    public static CliHost Console { get; } = new()
    {
        Out = System.Console.Out,
        Error = System.Console.Error,
        OpenStdin = System.Console.OpenStandardInput,
        OpenStdout = System.Console.OpenStandardOutput,
        OutputIsTerminal = !System.Console.IsOutputRedirected,
        ErrorIsTerminal = !System.Console.IsErrorRedirected,
    };
}
