using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Block;

/// <summary>
/// What a refusal because of a seal tells the user to do: the one place that says "dse unseal". Unsealing writes the
/// mark in the file, so a user who may not write the file (another user's golden of mode 0644, a read-only mount, an
/// immutable file) is told instead to work on a full clone, which that user can make and change.
/// </summary>
internal static class SealAdvice
{
    /// <summary>The advice for the image at <paramref name="path"/>, sealed for <paramref name="seal"/>, in words that follow a "; ".</summary>
    public static string For(string path, SealReasons seal)
    {
        if (WhyCannotUnseal(path) is string why)
            return $"{why}, so it cannot be unsealed either: work on a full clone (dse clone {Quote(path)} COPY)";
        return (seal & SealReasons.Golden) != 0
            ? $"unseal it first if no linked clone reads through it: dse unseal {Quote(path)}"
            : "use 'dse snapshot delete' or 'dse snapshot revert' (or 'dse unseal' it first)";
    }

    // Why this user may not write the file's mark; when its mode is the reason, the owner and mode say who may.
    private static string? WhyCannotUnseal(string path)
    {
        string? why = FileNode.WhyNotWritable(path);
        if (why is null) return null;
        if (why.StartsWith("this user", StringComparison.Ordinal) && OperatingSystem.IsLinux() && Libc.Stat(path, out var st) == 0)
            return $"it is owned by {UserName(st.Uid)} (mode {Convert.ToString(st.Mode & 0xFFF, 8).PadLeft(4, '0')}) and this user may not write it";
        return why;
    }

    // The account name of a uid from /etc/passwd ("uid N" when it has none there).
    private static string UserName(uint uid)
    {
        try
        {
            foreach (var line in File.ReadLines("/etc/passwd"))
            {
                var fields = line.Split(':');
                if (fields.Length > 2 && fields[2] == uid.ToString(System.Globalization.CultureInfo.InvariantCulture)) return fields[0];
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        return $"uid {uid}";
    }

    // A path as a shell word, so that the command can be pasted (quoted only when it needs to be).
    private static string Quote(string path) =>
        path.All(c => char.IsAsciiLetterOrDigit(c) || "/._-+,:@%=".Contains(c)) ? path : "'" + path.Replace("'", "'\\''") + "'";
}
