using System.CommandLine;
using System.CommandLine.Invocation;
using System.Text.Json;
using DiskSnapshotEngine.Errors;

namespace DiskSnapshotEngine.Cli;

/// <summary>
/// Runs one command line: parse, invoke the verb, and map every failure to one line on stderr and an exit code.
/// This is the only place that turns exceptions into output; verbs just throw.
/// </summary>
internal static class CliApp
{
    private static readonly AsyncLocal<CliHost?> s_host = new();

    /// <summary>The streams of the command line being run (the console unless a test supplied others).</summary>
    public static CliHost Host => s_host.Value ?? CliHost.Console;

    /// <summary>Runs <paramref name="args"/> and returns the exit code (see <see cref="ExitCodes"/>).</summary>
    public static Task<int> RunAsync(string[] args, CliHost host, CancellationSignal? signal = null) =>
        RunAsync(args, host, signal, DirectRun.Match(args));

    /// <summary>As above, <paramref name="direct"/> being <see cref="DirectRun.Match"/> of <paramref name="args"/>.</summary>
    public static Task<int> RunAsync(string[] args, CliHost host, CancellationSignal? signal, DirectRun? direct)
    {
        // Not an async method itself: its state machine would hold parser types, and loading them is start-up time.
        if (Commands.InfoCommand.IsPlain(args)) return Task.FromResult(RunPlainInfo(args[1], host, signal));
        if (IsVersion(args)) return Task.FromResult(RunVersion(args, host));
        return direct is not null ? Task.FromResult(RunDirect(direct, host, signal)) : RunParsedAsync(args, host, signal);
    }

    /// <summary><c>dse --version</c> or <c>dse --version --json</c> (in either order): answered without the parser.</summary>
    public static bool IsVersion(string[] args) =>
        args is ["--version"] || (args.Length == 2 && args.Contains("--version") && args.Contains(CommandCatalog.JsonOption));

    // The parser's own --version prints the informational version alone on a line (it reads the same attribute);
    // with --json it is one object like every other answer.
    private static int RunVersion(string[] args, CliHost host)
    {
        host.Out.WriteLine(args.Length == 2 ? Output.Json.Serialize(new VersionView(Version)) : Version);
        FlushAfterResult(host);
        return ExitCodes.Ok;
    }

    // A verb's plain command line without the parser (DirectRun): the same output, the same error mapping.
    private static int RunDirect(DirectRun direct, CliHost host, CancellationSignal? signal)
    {
        var context = new CliContext(host, direct.Args.Json, direct.Args.Quiet, direct.Args.Verbose, signal?.Token ?? CancellationToken.None);
        try
        {
            // Every await below the verb's body continues off any synchronization context (ConfigureAwait(false)).
            int code = direct.Body(context).GetAwaiter().GetResult();
            // The result is written here (Utf8Stdout): a failed write (full disk, closed stdout) fails the verb as the
            // console's write of the result does on the parser's path.
            host.Out.Flush();
            return code;
        }
        catch (Exception e)
        {
            return Report(ForceShareHint.Add(e, context.OffersForceShare), host, context.Verbose, signal?.ExitCode, context.Json);
        }
        finally
        {
            FlushAfterResult(host);
        }
    }

    // A last flush after the result or an error: a stdout that cannot take it (a full disk, closed) changes nothing now.
    private static void FlushAfterResult(CliHost host)
    {
        try { host.Out.Flush(); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
    }

    /// <summary>The parser's path for every command line (tests compare the direct paths with it).</summary>
    internal static async Task<int> RunParsedAsync(string[] args, CliHost host, CancellationSignal? signal)
    {
        var root = CommandCatalog.BuildRoot(args.Length > 0 ? args[0] : null);
        var parse = root.Parse(args);
        // The verb may not be known (a parse error), so --json is looked for in the words themselves.
        bool json = args.Contains(CommandCatalog.JsonOption);
        // The parser's own --version prints text only; with --json it is one object like every other answer.
        if (json && IsVersion(args)) return RunVersion(args, host);
        if (UnknownOption(parse) is { } unknown)
        {
            string hint = unknown == "-v" ? " (--version prints the version, --verbose shows more)" : "";
            WriteError(host, json, "usage", $"Unrecognized option '{unknown}'{hint} (try '{CommandPath(parse)} --help')", null, ExitCodes.Usage);
            return ExitCodes.Usage;
        }
        if (parse.Action is ParseErrorAction)
        {
            // One line: the first error is the cause ("Required command was not provided" only follows an unknown verb).
            var first = parse.Errors.FirstOrDefault(e => e.Message.StartsWith("Unrecognized", StringComparison.Ordinal)) ?? parse.Errors[0];
            WriteError(host, json, "usage", $"{first.Message.TrimEnd('.')} (try '{CommandPath(parse)} --help')", null, ExitCodes.Usage);
            return ExitCodes.Usage;
        }

        var config = new InvocationConfiguration
        {
            Output = host.Out,
            Error = host.Error,
            // Failures are mapped below, and signals are handled by CancellationSignal (Program), not by the parser.
            EnableDefaultExceptionHandler = false,
            ProcessTerminationTimeout = null,
        };
        var previous = s_host.Value;
        s_host.Value = host;
        try
        {
            return await parse.InvokeAsync(config, signal?.Token ?? CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            return Report(e, host, parse.GetValue<bool>(CommandCatalog.VerboseOption), signal?.ExitCode, json);
        }
        finally
        {
            s_host.Value = previous;
            FlushAfterResult(host);
        }
    }

    // What --version prints: the CLI assembly's informational version (the parser takes the same attribute).
    private static string Version =>
        System.Reflection.CustomAttributeExtensions.GetCustomAttribute<System.Reflection.AssemblyInformationalVersionAttribute>(typeof(CliApp).Assembly)
            ?.InformationalVersion ?? typeof(CliApp).Assembly.GetName().Version?.ToString() ?? "unknown";

    /// <summary><c>dse --version --json</c>: <c>{"version": "..."}</c>.</summary>
    internal sealed record VersionView(string Version);

    // `info IMAGE` without the parser (start-up time): the same output, the same error mapping.
    private static int RunPlainInfo(string image, CliHost host, CancellationSignal? signal)
    {
        try
        {
            return Commands.InfoCommand.RunPlain(image, host.Out);
        }
        catch (Exception e)
        {
            return Report(ForceShareHint.Add(e, offered: true), host, verbose: false, signal?.ExitCode);
        }
        finally
        {
            FlushAfterResult(host);
        }
    }

    /// <summary>Maps an exception to one line on stderr (the stack only when asked for) and its exit code.</summary>
    internal static int Report(Exception e, CliHost host, bool verbose, int? signalExitCode, bool json = false)
    {
        verbose |= Environment.GetEnvironmentVariable("DSE_DEBUG") == "1";
        while (e is AggregateException { InnerExceptions.Count: 1 } agg) e = agg.InnerExceptions[0];

        // After a signal the operation may fail in any way while stopping; the signal is the reason.
        if (signalExitCode is int code && e is OperationCanceledException or DiskImageException { Kind: ErrorKind.Cancelled })
            return Stopped(host, json, code);

        int exit;
        switch (e)
        {
            case UsageException u:
                WriteError(host, json, "usage", u.Message, null, ExitCodes.Usage);
                return ExitCodes.Usage;
            case DiskImageException d:
                exit = signalExitCode ?? ExitCodes.ForKind(d.Kind);
                WriteError(host, json, JsonNamingPolicy.CamelCase.ConvertName(d.Kind.ToString()), d.Message, d.Path, exit);
                break;
            case OperationCanceledException:
                return Stopped(host, json, signalExitCode ?? ExitCodes.Interrupted);
            default:
                exit = signalExitCode ?? ExitCodes.Internal;
                if (json) WriteError(host, json, "internal", $"{e.GetType().Name}: {OneLine(e.Message)}", null, exit);
                else
                    ErrorLine(host, $"dse: internal error: {e.GetType().Name}: {OneLine(e.Message)}" +
                        (verbose ? "" : " (run with --verbose or DSE_DEBUG=1 for details)"));
                break;
        }
        if (verbose) ErrorLine(host, e.ToString());
        return exit;
    }

    private static int Stopped(CliHost host, bool json, int code)
    {
        string word = code == ExitCodes.Terminated ? "terminated" : "interrupted";
        if (json) WriteError(host, json, "cancelled", word, null, code);
        else ErrorLine(host, $"dse: {word}");
        return code;
    }

    /// <summary>
    /// The one form of an error on stderr: <c>dse: error: MESSAGE</c>, or with --json
    /// <c>{"error":{"kind","message","path","exitCode"}}</c> on one line.
    /// </summary>
    internal static void WriteError(CliHost host, bool json, string kind, string message, string? path, int exitCode)
    {
        if (!json)
        {
            ErrorLine(host, $"dse: error: {message}");
            return;
        }
        ErrorLine(host, Output.Json.OneLineOf(new ErrorView(new ErrorDetail(kind, message, path, exitCode))));
    }

    // A stderr that is full (2>/dev/full) or closed (2>&-) cannot take the line: the exit code still says what happened,
    // which is better than the runtime aborting the process (exit 134) on an exception thrown while reporting one.
    private static void ErrorLine(CliHost host, string line)
    {
        try
        {
            host.Error.WriteLine(line);
            host.Error.Flush();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
    }

    // A word like an option that no option of the verb takes would be taken as the image (or push the image out as an
    // extra word, which the parser then names instead): it is the one to name. A lone '-' (stdin), negative numbers
    // and words after '--' are arguments; an unknown verb is named by the parser as it is.
    private static string? UnknownOption(ParseResult parse)
    {
        static bool LooksLikeOption(string word) => word.Length > 1 && word[0] == '-' && word != CommandCatalog.JsonOption &&
            !double.TryParse(word, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out _);
        if (parse.Tokens.Any(t => t.Type == System.CommandLine.Parsing.TokenType.DoubleDash)) return null;
        if (parse.CommandResult.Command is RootCommand && parse.UnmatchedTokens.Any(t => !LooksLikeOption(t))) return null;
        return parse.CommandResult.Children.OfType<System.CommandLine.Parsing.ArgumentResult>().SelectMany(a => a.Tokens)
            .Select(t => t.Value).Concat(parse.UnmatchedTokens).FirstOrDefault(LooksLikeOption);
    }

    private static string OneLine(string s) => s.ReplaceLineEndings(" ");

    private static string CommandPath(ParseResult parse)
    {
        var names = new List<string>();
        for (var r = parse.CommandResult; r is not null; r = r.Parent as System.CommandLine.Parsing.CommandResult)
            names.Add(r.Command is RootCommand ? "dse" : r.Command.Name);
        names.Reverse();
        return string.Join(' ', names);
    }
}

/// <summary>A command-line mistake found after parsing (options that exclude each other); exit code 2.</summary>
internal sealed class UsageException(string message) : Exception(message);

/// <summary>An error with --json: <c>{"error":{"kind","message","path","exitCode"}}</c>.</summary>
internal sealed record ErrorView(ErrorDetail Error);

/// <summary>The members of <see cref="ErrorView"/>.</summary>
internal sealed record ErrorDetail(string Kind, string Message, string? Path, int ExitCode);
