using System.Text;

namespace DiskSnapshotEngine.Hypervisors.Processes;

/// <summary>
/// One command line as a program and an argument list. It is started through <c>ProcessStartInfo.ArgumentList</c>,
/// never through a shell; <see cref="ToString"/> renders it for a human (POSIX-shell quoting) to copy and paste.
/// </summary>
/// <param name="Program">Program name looked up on the PATH (VBoxManage, virsh, powershell.exe).</param>
/// <param name="Arguments">Arguments, one per element, passed verbatim.</param>
/// <param name="StandardInput">Text fed to the program's standard input, or null.</param>
public sealed record ExternalCommand(string Program, IReadOnlyList<string> Arguments, string? StandardInput = null)
{
    /// <summary>Creates a command from a program and its arguments.</summary>
    public static ExternalCommand Of(string program, params string[] arguments) => new(program, arguments);

    /// <summary>The command as a POSIX shell line (arguments in single quotes where they need quoting).</summary>
    public override string ToString()
    {
        var sb = new StringBuilder(ShellQuote(Program));
        foreach (var a in Arguments) sb.Append(' ').Append(ShellQuote(a));
        return sb.ToString();
    }

    /// <summary>Quotes one word for a POSIX shell: bare when it is only safe characters, otherwise single-quoted with ' as '\''.</summary>
    public static string ShellQuote(string word) => DiskSnapshotEngine.IO.ShellWords.Quote(word);
}

/// <summary>The outcome of a finished command.</summary>
public sealed record CommandResult(int ExitCode, string StandardOutput, string StandardError);
