using System.Diagnostics;
using System.Text;

namespace DiskSnapshotEngine.Tests.Infrastructure;

/// <summary>
/// A real QEMU holding an image open, the way a running VM does: a long-lived `qemu-io -f FORMAT [-r [-U]] IMAGE`
/// reading its commands from a pipe we keep open. QEMU locks the file (OFD locks on its permission bytes) for as
/// long as it runs; disposing closes the pipe, and qemu-io exits on end of input.
/// </summary>
public sealed class QemuHolder : IDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();

    private QemuHolder(Process process) => _process = process;

    public int Pid => _process.Id;

    /// <summary>
    /// Starts qemu-io on <paramref name="path"/> and waits until its locks are on the file, and on
    /// <paramref name="backing"/> when given (qemu locks the top image before it opens its backing file).
    /// </summary>
    public static QemuHolder Start(string path, string format, bool readOnly = false, bool forceShare = false, string? backing = null)
    {
        var psi = new ProcessStartInfo(ExternalTool.Find("qemu-io") ?? "qemu-io")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        psi.ArgumentList.Add("-f");
        psi.ArgumentList.Add(format);
        if (readOnly) psi.ArgumentList.Add("-r");
        if (forceShare) psi.ArgumentList.Add("-U");
        psi.ArgumentList.Add(path);
        var holder = new QemuHolder(Process.Start(psi)!);
        holder._process.OutputDataReceived += (_, e) => { lock (holder._output) holder._output.AppendLine(e.Data); };
        holder._process.ErrorDataReceived += (_, e) => { lock (holder._output) holder._output.AppendLine(e.Data); };
        holder._process.BeginOutputReadLine();
        holder._process.BeginErrorReadLine();
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (!LockProbe.Locks(path).Any(l => l.Contains("OFDLCK")) || (backing is not null && !LockProbe.Locks(backing).Any(l => l.Contains("OFDLCK"))))
        {
            if (holder._process.HasExited || DateTime.UtcNow > deadline)
            {
                string why = holder.Output;
                holder.Dispose();
                throw new Xunit.Sdk.XunitException($"qemu-io did not hold {path}: {why}");
            }
            Thread.Sleep(20);
        }
        return holder;
    }

    /// <summary>What qemu-io printed so far.</summary>
    public string Output
    {
        get { lock (_output) return _output.ToString(); }
    }

    public void Dispose()
    {
        try
        {
            _process.StandardInput.Close();
            if (!_process.WaitForExit(10_000)) _process.Kill(entireProcessTree: true);
            _process.WaitForExit();
        }
        catch (InvalidOperationException) { }
        _process.Dispose();
    }
}
