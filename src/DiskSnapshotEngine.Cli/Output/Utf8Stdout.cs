using System.Runtime.InteropServices;
using System.Text;

namespace DiskSnapshotEngine.Cli.Output;

/// <summary>
/// Standard output written as <see cref="Console.Out"/> writes it when stdout is not a terminal and the console's
/// encoding is UTF-8 (the same bytes, write(2) on descriptor 1, a reader that went away ignored), without System.Console's
/// set-up (terminal database, signal handling), which costs a plain <c>dse info</c> a noticeable part of its start-up.
/// The text is written when flushed.
/// </summary>
internal sealed partial class Utf8Stdout : TextWriter
{
    private const int Epipe = 32, Eintr = 4;
    private static readonly UTF8Encoding s_utf8 = new(encoderShouldEmitUTF8Identifier: false);
    private readonly StringBuilder _text = new();

    /// <summary>
    /// The streams for a verb that writes only text to stdout (plain <c>info</c>): stdout through this writer when it can
    /// stand in for the console's (see the class summary), stderr and stdin from the console when first used; else null.
    /// </summary>
    public static CliHost? TryCreateHost() => OperatingSystem.IsLinux() && isatty(1) == 0 && LocaleIsUtf8()
        ? new CliHost
        {
            Out = new Utf8Stdout(),
            Error = new ConsoleErrorOnUse(),
            OpenStdin = () => Console.OpenStandardInput(),
            OpenStdout = CliHost.OpenStdoutBytes,
            OutputIsTerminal = false,
            ErrorIsTerminal = isatty(2) == 1,
        }
        : null;

    public override Encoding Encoding => s_utf8;

    public override void Write(char value) => _text.Append(value);

    public override void Write(string? value) => _text.Append(value);

    public override void Write(char[] buffer, int index, int count) => _text.Append(buffer, index, count);

    public override unsafe void Flush()
    {
        if (_text.Length == 0) return;
        byte[] bytes = s_utf8.GetBytes(_text.ToString());
        _text.Clear();
        fixed (byte* start = bytes)
        {
            for (int done = 0; done < bytes.Length;)
            {
                nint n = write(1, start + done, bytes.Length - done);
                if (n >= 0) { done += (int)n; continue; }
                int errno = Marshal.GetLastPInvokeError();
                if (errno == Eintr) continue;
                if (errno == Epipe) return; // as the console does: output nobody reads is dropped
                // Any other failure (a full disk, a closed descriptor): the console's stream writes the rest, so that it
                // fails with the exception, hence the error line and exit code, the console's write gives.
                using (var console = Console.OpenStandardOutput()) console.Write(bytes, done, bytes.Length - done);
                return;
            }
        }
    }

    // The console takes its encoding from the charset of LC_ALL, LC_MESSAGES or LANG (UTF-8 when none names one): when
    // every one that is set names UTF-8 or none, that is UTF-8 whatever the order it reads them in.
    private static bool LocaleIsUtf8()
    {
        foreach (var name in (ReadOnlySpan<string>)["LC_ALL", "LC_MESSAGES", "LANG"])
        {
            var locale = Environment.GetEnvironmentVariable(name).AsSpan();
            int dot = locale.IndexOf('.');
            if (dot < 0) continue;
            var charset = locale[(dot + 1)..];
            int at = charset.IndexOf('@');
            if (at >= 0) charset = charset[..at];
            if (!charset.Equals("utf-8", StringComparison.OrdinalIgnoreCase) && !charset.Equals("utf8", StringComparison.OrdinalIgnoreCase)) return false;
        }
        return true;
    }

    /// <summary>Console.Error, set up only when something is written to it (an error).</summary>
    private sealed class ConsoleErrorOnUse : TextWriter
    {
        public override Encoding Encoding => Console.Error.Encoding;
        public override void Write(char value) => Console.Error.Write(value);
        public override void Write(string? value) => Console.Error.Write(value);
        public override void Write(char[] buffer, int index, int count) => Console.Error.Write(buffer, index, count);
        public override void WriteLine(string? value) => Console.Error.WriteLine(value);
        public override void Flush() => Console.Error.Flush();
    }

    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial nint write(int fd, byte* buffer, nint count);

    [LibraryImport("libc")]
    private static partial int isatty(int fd);
}
