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
        OpenStdout = OpenStdoutBytes,
        OutputIsTerminal = !System.Console.IsOutputRedirected,
        ErrorIsTerminal = !System.Console.IsErrorRedirected,
    };

    /// <summary>
    /// Stdout as bytes: fd 1 as a plain stream, not Console.OpenStandardOutput, whose stream drops writes that fail with
    /// EPIPE, so an export into a pipe whose reader went away would read the whole disk into nowhere and exit 0.
    /// </summary>
    public static Stream OpenStdoutBytes() => OperatingSystem.IsWindows() ? System.Console.OpenStandardOutput()
        : new FileStream(new Microsoft.Win32.SafeHandles.SafeFileHandle(1, ownsHandle: false), FileAccess.Write, bufferSize: 0);
}
