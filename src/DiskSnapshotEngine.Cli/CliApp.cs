using System.CommandLine;
using System.CommandLine.Invocation;
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
    public static async Task<int> RunAsync(string[] args, CliHost host, CancellationSignal? signal = null)
    {
        var root = CommandCatalog.BuildRoot(args.Length > 0 ? args[0] : null);
        var parse = root.Parse(args);
        if (parse.Action is ParseErrorAction)
        {
            foreach (var error in parse.Errors)
                host.Error.WriteLine($"dse: error: {error.Message}");
            host.Error.WriteLine($"Try '{CommandPath(parse)} --help' for more information.");
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
            return Report(e, host, parse.GetValue<bool>(CommandCatalog.VerboseOption), signal?.ExitCode);
        }
        finally
        {
            s_host.Value = previous;
            try { host.Out.Flush(); }
            catch (IOException) { }
        }
    }

    /// <summary>Maps an exception to one line on stderr (the stack only when asked for) and its exit code.</summary>
    internal static int Report(Exception e, CliHost host, bool verbose, int? signalExitCode)
    {
        verbose |= Environment.GetEnvironmentVariable("DSE_DEBUG") == "1";
        while (e is AggregateException { InnerExceptions.Count: 1 } agg) e = agg.InnerExceptions[0];

        // After a signal the operation may fail in any way while stopping; the signal is the reason.
        if (signalExitCode is int code && e is OperationCanceledException or DiskImageException { Kind: ErrorKind.Cancelled })
        {
            host.Error.WriteLine($"dse: {(code == ExitCodes.Terminated ? "terminated" : "interrupted")}");
            return code;
        }

        int exit;
        switch (e)
        {
            case UsageException u:
                host.Error.WriteLine($"dse: error: {u.Message}");
                return ExitCodes.Usage;
            case DiskImageException d:
                host.Error.WriteLine($"dse: error: {d.Message}");
                exit = ExitCodes.ForKind(d.Kind);
                break;
            case OperationCanceledException:
                host.Error.WriteLine(signalExitCode == ExitCodes.Terminated ? "dse: terminated" : "dse: interrupted");
                return signalExitCode ?? ExitCodes.Interrupted;
            default:
                host.Error.WriteLine($"dse: internal error: {e.GetType().Name}: {OneLine(e.Message)}" +
                    (verbose ? "" : " (run with --verbose or DSE_DEBUG=1 for details)"));
                exit = ExitCodes.Internal;
                break;
        }
        if (verbose) host.Error.WriteLine(e.ToString());
        return signalExitCode ?? exit;
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
