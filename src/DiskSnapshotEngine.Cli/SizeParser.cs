using System.CommandLine;
using System.Globalization;

namespace DiskSnapshotEngine.Cli;

/// <summary>
/// SIZE values on the command line: plain bytes, or an integer with a binary suffix K, M, G, T (also KiB, MiB,
/// GiB, TiB; any case): 1K = 1024. Decimal units (KB, MB) are refused rather than guessed.
/// </summary>
internal static class SizeParser
{
    private static readonly (string Suffix, int Shift)[] s_suffixes =
    {
        ("kib", 10), ("mib", 20), ("gib", 30), ("tib", 40),
        ("k", 10), ("m", 20), ("g", 30), ("t", 40),
        ("b", 0),
    };

    /// <summary>Parses a size; on failure <paramref name="error"/> says why, in one line.</summary>
    public static bool TryParse(string? text, out long value, out string error)
    {
        value = 0;
        error = "";
        string s = (text ?? "").Trim();
        if (s.Length == 0)
        {
            error = "empty size";
            return false;
        }
        int digits = 0;
        while (digits < s.Length && char.IsAsciiDigit(s[digits])) digits++;
        if (digits == 0)
        {
            error = $"invalid size '{text}': expected a non-negative integer with an optional K, M, G or T suffix (1K = 1024)";
            return false;
        }
        string suffix = s[digits..].Trim().ToLowerInvariant();
        int shift = -1;
        foreach (var (name, sh) in s_suffixes)
            if (suffix == name) { shift = sh; break; }
        if (suffix.Length == 0) shift = 0;
        if (shift < 0)
        {
            error = $"invalid size '{text}': unknown unit '{s[digits..].Trim()}' (use K, M, G, T or KiB, MiB, GiB, TiB; 1K = 1024)";
            return false;
        }
        if (!long.TryParse(s.AsSpan(0, digits), NumberStyles.None, CultureInfo.InvariantCulture, out long number)
            || number > (long.MaxValue >> shift))
        {
            error = $"invalid size '{text}': too large";
            return false;
        }
        value = number << shift;
        return true;
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
                if (!TryParse(token, out long v, out string error))
                {
                    result.AddError($"{name}: {error}");
                    return null;
                }
                if (v == 0 && !allowZero)
                {
                    result.AddError($"{name}: must be greater than zero");
                    return null;
                }
                return v;
            },
        };
        return option;
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
