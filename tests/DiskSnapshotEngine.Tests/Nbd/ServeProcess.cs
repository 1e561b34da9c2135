using System.Diagnostics;
using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Nbd;

/// <summary>A running <c>dse serve</c> and the first line it printed.</summary>
internal sealed class ServeProcess : IDisposable
{
    private readonly Task<string> _stderr;

    public ServeProcess(params string[] args)
    {
        Process = CliRunner.Start(["serve", .. args]);
        Process.StandardInput.Close();
        _stderr = Process.StandardError.ReadToEndAsync();
        var line = Process.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromMinutes(1)).GetAwaiter().GetResult();
        FirstLine = line ?? throw new InvalidOperationException($"dse serve printed nothing: {_stderr.Result}");
    }

    public Process Process { get; }
    public string FirstLine { get; }

    public void Signal(string signal) => ExternalTool.RunChecked("kill", "-" + signal, Process.Id.ToString());

    public async Task<(int ExitCode, string StdErr)> WaitAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(1));
        await Process.WaitForExitAsync(timeout.Token);
        return (Process.ExitCode, await _stderr);
    }

    public void Dispose()
    {
        if (!Process.HasExited) Process.Kill();
        Process.Dispose();
    }
}
