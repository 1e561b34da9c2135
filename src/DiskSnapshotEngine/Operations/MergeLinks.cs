using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Operations;

/// <summary>
/// The symbolic links a commit makes meaningless: a merged layer named through a link loses its file, and the link
/// would be left dangling. A link goes only when it still leads to the file the plan recorded (a link the user
/// re-pointed since names something else: it is theirs again) and that file is gone. A link this user may not remove
/// (another user's folder, a sticky folder, a read-only mount) is left with its reason: the data is merged by then, so
/// failing here would strand a finished merge in its remove phase, every rerun failing the same way.
/// </summary>
internal static class MergeLinks
{
    /// <summary>
    /// Removes the recorded links of <paramref name="journal"/> that still lead to their removed files, then deletes the
    /// journal, then the image's own link: while the journal exists, the link leads a rerun under the name the user gave
    /// to it, and a kill after the journal is gone leaves only a dangling link (nothing left to finish). Idempotent: a
    /// link already removed (or replaced by a file) is skipped.
    /// </summary>
    public static (List<string> Removed, List<KeptLink> Kept) RemoveAndEnd(OperationJournal journal)
    {
        var removed = new List<string>();
        var kept = new List<KeptLink>();
        bool ended = false;
        foreach (var link in journal.Links.OrderBy(l => IsImage(journal, l)))
        {
            if (!ended && IsImage(journal, link)) { journal.Delete(); ended = true; }
            if (FileNode.LinkTargetOf(link.Link) is null) continue;
            if (WhyKept(link) is { } why) kept.Add(new KeptLink(link.Link, why));
            else removed.Add(link.Link);
        }
        if (!ended) journal.Delete();
        return (removed, kept);
    }

    private static bool IsImage(OperationJournal journal, JournalLink link) => string.Equals(link.Link, journal.Image, StringComparison.Ordinal);

    // Removes the link and returns null, or says why it stays.
    private static string? WhyKept(JournalLink link)
    {
        try
        {
            string leads = FileNode.Target(link.Link);
            if (!string.Equals(leads, link.File, StringComparison.Ordinal))
                return $"it now leads to {leads}, not to the merged {link.File}";
            if (Path.Exists(link.File)) return $"{link.File} exists again";
            DurableFiles.DeleteLink(link.Link);
            return null;
        }
        catch (DiskImageException e)
        {
            // Why this user may not remove it in the folder's terms (a sticky folder, its mode), else what unlink said.
            return FolderAccess.WhyNotRemovable(link.Link) ?? e.Detail;
        }
    }
}
