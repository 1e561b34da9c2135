using System.Text;
using DiskSnapshotEngine.Errors;

namespace DiskSnapshotEngine.Hypervisors.Libvirt;

/// <summary>
/// The quoting rules of systemd unit files (systemd.service "Command lines", systemd.unit "Specifiers",
/// systemd-escape): an argument vector written into ExecStart= reaches the program exactly, whatever characters the
/// paths hold. ExecStart= is not a shell line: words split at whitespace, a double-quoted word takes C escapes,
/// % starts a specifier (%% is a literal %), $ starts an environment variable ($$ is a literal $).
/// </summary>
public static class SystemdUnit
{
    /// <summary>The ExecStart= value that runs <paramref name="argv"/> (the program first, an absolute path).</summary>
    /// <exception cref="DiskImageException">InvalidArgument for a program path systemd refuses (relative, or holding quotes, backslashes, $ or control characters).</exception>
    public static string ExecLine(IReadOnlyList<string> argv)
    {
        if (argv.Count == 0 || !Path.IsPathFullyQualified(argv[0]))
            throw new DiskImageException(ErrorKind.InvalidArgument, $"systemd needs the program as an absolute path (got '{(argv.Count == 0 ? "" : argv[0])}')");
        // systemd refuses these in an executable name even when escaped, and does not expand $$ there.
        if (argv[0].Any(c => c is '"' or '\'' or '\\' or '$' || char.IsControl(c)))
            throw new DiskImageException(ErrorKind.InvalidArgument, $"systemd cannot run a program whose path holds quotes, backslashes, $ or control characters: {argv[0]}");
        return string.Join(' ', argv.Select(Quote));
    }

    /// <summary>One word of a command line: always double-quoted, with \, " and control characters escaped, % and $ doubled.</summary>
    public static string Quote(string word)
    {
        var sb = new StringBuilder(word.Length + 2).Append('"');
        foreach (var rune in word.EnumerateRunes())
        {
            switch (rune.Value)
            {
                case '\\': sb.Append(@"\\"); break;
                case '"': sb.Append("\\\""); break;
                case '%': sb.Append("%%"); break;
                case '$': sb.Append("$$"); break;
                case < 0x20 or 0x7f: sb.Append($"\\x{rune.Value:x2}"); break;
                default: sb.Append(rune.ToString()); break;
            }
        }
        return sb.Append('"').ToString();
    }

    /// <summary>
    /// A free-text setting value (Description=): specifiers doubled, line breaks and other control characters made
    /// spaces (a value ends at the end of its line).
    /// </summary>
    public static string Text(string value) =>
        new string(value.Select(c => char.IsControl(c) ? ' ' : c).ToArray()).Replace("%", "%%", StringComparison.Ordinal);

    /// <summary>
    /// A string as it may appear inside a unit name (the rules of <c>systemd-escape</c>): ASCII letters, digits, ':', '_'
    /// and '.' (not first) stay, '/' becomes '-', every other byte of the UTF-8 form becomes \xNN.
    /// </summary>
    public static string EscapeName(string value)
    {
        var sb = new StringBuilder();
        var bytes = Encoding.UTF8.GetBytes(value);
        for (int i = 0; i < bytes.Length; i++)
        {
            byte b = bytes[i];
            bool plain = char.IsAsciiLetterOrDigit((char)b) || b is (byte)':' or (byte)'_' || (b == '.' && i > 0);
            if (b == '/') sb.Append('-');
            else if (plain) sb.Append((char)b);
            else sb.Append($"\\x{b:x2}");
        }
        return sb.ToString();
    }
}
