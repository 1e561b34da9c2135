using System.Runtime.InteropServices;

namespace DiskSnapshotEngine.Cli;

internal static class Program
{
    // Not async: the async entry point's state machine is compiled at every start (ReadyToRun leaves it out).
    private static int Main(string[] args)
    {
        InheritedSignals.RestoreForServers(args);
        var signal = new CancellationSignal();
        // First SIGINT/SIGTERM: cancel the running operation so it stops cleanly (partial outputs removed,
        // metadata committed). A second one is left to the default handler, which ends the process at once.
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => c.Cancel = signal.Raise(ExitCodes.Interrupted));
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => c.Cancel = signal.Raise(ExitCodes.Terminated));
        // A plain `info IMAGE` (what scripts run most), --version and the verbs run without the parser (DirectRun) also
        // skip System.Console's set-up when they can (Utf8Stdout).
        var direct = DirectRun.Match(args);
        var host = direct is not null || Commands.InfoCommand.IsPlain(args) || CliApp.IsVersion(args)
            ? Output.Utf8Stdout.TryCreateHost() ?? CliHost.Console : CliHost.Console;
        return CliApp.RunAsync(args, host, signal, direct).GetAwaiter().GetResult();
    }
}

/// <summary>Cancellation requested by a signal, remembering which one for the exit code.</summary>
internal sealed class CancellationSignal : IDisposable
{
    private readonly CancellationTokenSource _cts = new();
    private int _exitCode;

    public CancellationToken Token => _cts.Token;

    /// <summary>The exit code of the signal that cancelled, or null.</summary>
    public int? ExitCode => _exitCode == 0 ? null : _exitCode;

    /// <summary>Records the signal and cancels; returns false when a signal was already raised (let the default handler kill).</summary>
    public bool Raise(int exitCode)
    {
        if (Interlocked.CompareExchange(ref _exitCode, exitCode, 0) != 0) return false;
        _cts.Cancel();
        return true;
    }

    public void Dispose() => _cts.Dispose();
}
