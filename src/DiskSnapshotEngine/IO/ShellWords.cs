namespace DiskSnapshotEngine.IO;

/// <summary>Words of a command line shown to a human to copy and paste into a POSIX shell.</summary>
public static class ShellWords
{
    /// <summary>Quotes one word for a POSIX shell: bare when it is only safe characters, otherwise single-quoted with ' as '\''.</summary>
    public static string Quote(string word)
    {
        if (word.Length > 0 && word.All(c => char.IsAsciiLetterOrDigit(c) || "-_./:=,+@%".Contains(c))) return word;
        return "'" + word.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
    }
}
