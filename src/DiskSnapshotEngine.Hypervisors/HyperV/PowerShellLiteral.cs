using System.Text;

namespace DiskSnapshotEngine.Hypervisors.HyperV;

/// <summary>
/// Builds PowerShell source text from values without any of them being interpreted: every string becomes a
/// single-quoted literal, where nothing expands ($, `, " are plain characters) and the only special character is the
/// quote itself, written twice. PowerShell counts the typographic single quotes (U+2018, U+2019, U+201A, U+201B) as
/// quotes too, so they are doubled as well; a path such as <c>C:\VMs\Zoë’s disk.vhdx</c> survives intact.
/// </summary>
public static class PowerShellLiteral
{
    /// <summary>The characters PowerShell's tokenizer treats as a single quote.</summary>
    public static bool IsSingleQuote(char c) => c is '\'' or '\u2018' or '\u2019' or '\u201A' or '\u201B';

    /// <summary>A single-quoted PowerShell string literal whose value is exactly <paramref name="value"/>.</summary>
    public static string Quote(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        var sb = new StringBuilder(value.Length + 2).Append('\'');
        foreach (var c in value)
        {
            if (IsSingleQuote(c)) sb.Append(c);
            sb.Append(c);
        }
        return sb.Append('\'').ToString();
    }

    /// <summary>
    /// The argument of <c>powershell.exe -EncodedCommand</c>: base64 of the UTF-16LE script, which reaches PowerShell
    /// without passing through any command-line quoting (cmd.exe or CreateProcess rules) at all.
    /// </summary>
    public static string Encode(string script) => Convert.ToBase64String(Encoding.Unicode.GetBytes(script));
}
