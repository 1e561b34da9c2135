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
        if (FileNode.WhyNotWritable(path) is string why)
            return $"{why}, so it cannot be unsealed either: work on a full clone (dse clone {ShellWords.Quote(path)} COPY)";
        return (seal & SealReasons.Golden) != 0
            ? $"unseal it first if no linked clone reads through it: dse unseal {ShellWords.Quote(path)}"
            : "use 'dse snapshot delete' or 'dse snapshot revert' (or 'dse unseal' it first)";
    }
}
