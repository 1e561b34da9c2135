using System.CommandLine;
using System.Globalization;

namespace DiskSnapshotEngine.Cli;

/// <summary>
/// SIZE values on the command line, as qemu-img and PowerShell users type them: a whole or decimal number with an
/// optional unit K, M, G, T, P, written alone or as KB or KiB (any case). Every unit is binary, as both tools mean
/// it: 1K = 1KB = 1KiB = 1024, so 10GB = 10 × 2^30 and 1.5G = 1610612736. A size that is not a whole number of
/// bytes, a comma, an exponent or any other form is refused with the accepted forms.
/// </summary>
internal static class SizeParser
{
    private const string Forms =
        "use a number with an optional unit K, M, G, T or P, alone or as KB/KiB, MB/MiB, GB/GiB, TB/TiB, PB/PiB " +
        "(binary, any case: 1K = 1KB = 1KiB = 1024), for example 10GB, 1.5G, 512MB, 1TiB or 4096";

    private static readonly string[] s_units = { "k", "m", "g", "t", "p" };

    /// <summary>Parses a size; on failure <paramref name="error"/> says why, in one line.</summary>
    public static bool TryParse(string? text, out long value, out string error)
    {
        value = 0;
        error = "";
        string s = (text ?? "").Trim();
        int end = 0;
        while (end < s.Length && (char.IsAsciiDigit(s[end]) || s[end] == '.')) end++;
        string number = s[..end], unit = s[end..].Trim().ToLowerInvariant();
        int shift = Shift(unit);
        if (number.Length == 0 || number.Count(c => c == '.') > 1 || number[0] == '.' || number[^1] == '.' || shift < 0
            || !decimal.TryParse(number, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out decimal n))
        {
            error = $"invalid size '{text}': {Forms}";
            return false;
        }
        decimal bytes;
        try { bytes = n * (1L << shift); }
        catch (OverflowException) { bytes = decimal.MaxValue; }
        if (bytes > long.MaxValue)
        {
            error = $"invalid size '{text}': too large";
            return false;
        }
        if (bytes != decimal.Truncate(bytes))
        {
            error = $"invalid size '{text}': {bytes.ToString(CultureInfo.InvariantCulture)} is not a whole number of bytes; {Forms}";
            return false;
        }
        value = (long)bytes;
        return true;
    }

    // "" or "b": bytes; "k", "kb", "kib" (and so on): the power of 1024; -1: not a unit.
    private static int Shift(string unit)
    {
        if (unit is "" or "b") return 0;
        for (int i = 0; i < s_units.Length; i++)
            if (unit == s_units[i] || unit == s_units[i] + "b" || unit == s_units[i] + "ib") return 10 * (i + 1);
        return -1;
    }

    /// <summary>Parses a size or throws <see cref="UsageException"/>.</summary>
    public static long Parse(string text) =>
        TryParse(text, out long v, out string error) ? v : throw new UsageException(error);

    /// <summary>An option taking a SIZE; a bad value is a parse error (exit code 2).</summary>
    public static Option<long?> Option(string name, string description, bool allowZero = false, string helpName = "SIZE")
    {
        var option = new Option<long?>(name)
        {
            Description = description,
            HelpName = helpName,
            CustomParser = result =>
            {
                string token = result.Tokens.Count > 0 ? result.Tokens[0].Value : "";
                if (TryParseOption(token, allowZero, out long v, out string error)) return v;
                result.AddError($"{name}: {error}");
                return null;
            },
        };
        return option;
    }

    /// <summary>The rule of a SIZE option's value (<see cref="Option"/>, and the direct run's check of it): a size, positive unless <paramref name="allowZero"/>.</summary>
    public static bool TryParseOption(string text, bool allowZero, out long value, out string error)
    {
        if (!TryParse(text, out value, out error)) return false;
        if (value != 0 || allowZero) return true;
        error = "must be greater than zero";
        return false;
    }

    /// <summary>Human form: "64 MiB (67108864 bytes)", or just bytes when not a whole unit.</summary>
    public static string Describe(long bytes)
    {
        string[] units = { "KiB", "MiB", "GiB", "TiB", "PiB" };
        string? best = null;
        for (int i = 0, shift = 10; i < units.Length; i++, shift += 10)
        {
            long unit = 1L << shift;
            if (bytes < unit) break;
            best = bytes % unit == 0
                ? $"{bytes >> shift} {units[i]}"
                : $"{((double)bytes / unit).ToString("0.##", CultureInfo.InvariantCulture)} {units[i]}";
        }
        return best is null ? $"{bytes} bytes" : $"{best} ({bytes} bytes)";
    }
}
