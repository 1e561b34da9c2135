using System.ComponentModel;
using System.Diagnostics;
using DiskSnapshotEngine.Errors;

namespace DiskSnapshotEngine.Hypervisors.Processes;

/// <summary>Starts external commands. Tests substitute a fake only for tools that cannot run here (VBoxManage, PowerShell with Hyper-V).</summary>
public interface ICommandRunner
{
    /// <summary>True when <paramref name="program"/> can be found on the PATH.</summary>
    bool IsAvailable(string program);

    /// <summary>Runs the command to completion.</summary>
    /// <exception cref="DiskImageException">ExternalTool when the program is missing, cannot start, or exceeds the time limit.</exception>
    CommandResult Run(ExternalCommand command, TimeSpan? timeout = null);
}

/// <summary>Runs commands as real processes with argument lists.</summary>
public sealed class ProcessCommandRunner : ICommandRunner
{
    /// <summary>The shared instance.</summary>
    public static ProcessCommandRunner Instance { get; } = new();

    private static readonly TimeSpan DefaultTimeout = TimeSpan.FromMinutes(10);

    /// <inheritdoc/>
    public bool IsAvailable(string program) => FindOnPath(program) is not null;

    /// <summary>Full path of <paramref name="program"/> on the PATH (with PATHEXT on Windows), or null.</summary>
    public static string? FindOnPath(string program)
    {
        if (System.IO.Path.IsPathFullyQualified(program)) return File.Exists(program) ? program : null;
        var exts = OperatingSystem.IsWindows()
            ? (Environment.GetEnvironmentVariable("PATHEXT") ?? ".EXE;.CMD;.BAT").Split(';').Prepend("")
            : new[] { "" };
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(System.IO.Path.PathSeparator))
        {
            if (string.IsNullOrEmpty(dir)) continue;
            foreach (var ext in exts)
            {
                var p = System.IO.Path.Combine(dir, program + ext);
                if (File.Exists(p)) return p;
            }
        }
        return null;
    }

    /// <inheritdoc/>
    public CommandResult Run(ExternalCommand command, TimeSpan? timeout = null)
    {
        var exe = FindOnPath(command.Program)
            ?? throw new DiskImageException(ErrorKind.ExternalTool,
                $"{command.Program} is not on the PATH; install it or run this yourself: {command}");
        var psi = new ProcessStartInfo(exe)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = command.StandardInput is not null,
            UseShellExecute = false,
        };
        foreach (var a in command.Arguments) psi.ArgumentList.Add(a);
        Process p;
        try
        {
            p = Process.Start(psi) ?? throw new DiskImageException(ErrorKind.ExternalTool, $"could not start: {command}");
        }
        catch (Win32Exception e)
        {
            throw new DiskImageException(ErrorKind.ExternalTool, $"could not start {exe}: {e.Message}", inner: e);
        }
        using (p)
        {
            var stdout = p.StandardOutput.ReadToEndAsync();
            var stderr = p.StandardError.ReadToEndAsync();
            if (command.StandardInput is not null)
            {
                p.StandardInput.Write(command.StandardInput);
                p.StandardInput.Close();
            }
            if (!p.WaitForExit(timeout ?? DefaultTimeout))
            {
                try { p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
                throw new DiskImageException(ErrorKind.ExternalTool, $"did not finish in {(timeout ?? DefaultTimeout).TotalSeconds:0} s: {command}");
            }
            return new CommandResult(p.ExitCode, stdout.GetAwaiter().GetResult(), stderr.GetAwaiter().GetResult());
        }
    }

    /// <summary>Runs a command and turns a non-zero exit into ExternalTool with the tool's own first error line.</summary>
    public static CommandResult RunChecked(ICommandRunner runner, ExternalCommand command, TimeSpan? timeout = null)
    {
        var r = runner.Run(command, timeout);
        if (r.ExitCode != 0)
        {
            var why = FirstLine(r.StandardError) ?? FirstLine(r.StandardOutput) ?? "no output";
            throw new DiskImageException(ErrorKind.ExternalTool, $"{command.Program} exited with {r.ExitCode}: {why} (command: {command})");
        }
        return r;
    }

    private static string? FirstLine(string text) =>
        text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).FirstOrDefault();
}
