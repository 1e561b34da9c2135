namespace DiskSnapshotEngine.Operations;

/// <summary>Where merge looks for dependents, how it opens images, and which layers it must leave alone.</summary>
public sealed record MergeOptions
{
    /// <summary>How to open the images (search paths for parents, fault injection in tests).</summary>
    public OpenOptions Open { get; init; } = OpenOptions.ReadOnly;

    /// <summary>More folders to search for children (the folders of the chain's files are always searched).</summary>
    public IReadOnlyList<string> ChildFolders { get; init; } = Array.Empty<string>();

    /// <summary>
    /// Layers the commit must not change or remove beyond the chain's own rules (for example the layers a snapshot
    /// catalog names: <c>Snapshots.SnapshotMergeGuard</c>); null for none.
    /// </summary>
    public IMergeGuard? Guard { get; init; }

    /// <summary>How the committed image leaves the chain (snapshot delete of a base layer under the current state replaces it).</summary>
    internal MergePublish Publish { get; init; } = MergePublish.RemoveImage;
}

/// <summary>Says which layers of a planned commit must not change (the target) or disappear (the merged layers).</summary>
public interface IMergeGuard
{
    /// <summary>
    /// Why the commit must not touch some of <paramref name="layers"/> (the merged layers top first, then the target),
    /// as one line ending the message "cannot merge: ..."; null when nothing stops it.
    /// </summary>
    /// <param name="layers">Full paths of the layers that would change or disappear.</param>
    /// <param name="folders">The folders the merge searches for dependents (those of the chain's files and <see cref="MergeOptions.ChildFolders"/>).</param>
    string? Refusal(IReadOnlyList<string> layers, IReadOnlyList<string> folders);
}

/// <summary>How a commit ends.</summary>
internal enum MergePublish
{
    /// <summary>The merged layers (the image among them) are deleted; its children were relinked to the target.</summary>
    RemoveImage,

    /// <summary>The target is renamed over the image, so the image's path never goes missing.</summary>
    ReplaceImage,
}

/// <summary>What a merge did.</summary>
/// <param name="Stats">Bytes moved.</param>
/// <param name="Target">The layer that received the data (commit) or the image's new parent (pull).</param>
/// <param name="Relinked">Children now linked to the target.</param>
/// <param name="Removed">Files removed (the merged layers).</param>
/// <param name="Resumed">True when an interrupted run was finished.</param>
public sealed record MergeResult(CopyStats Stats, string Target, IReadOnlyList<string> Relinked, IReadOnlyList<string> Removed, bool Resumed)
{
    /// <summary>The target, when the merge lifted its golden seal: the merged image was the only linked clone dse had made of it.</summary>
    public string? Unsealed { get; init; }

    /// <summary>Symbolic links to merged layers that the merge removed with the files they named (they would have been left dangling).</summary>
    public IReadOnlyList<string> RemovedLinks { get; init; } = Array.Empty<string>();

    /// <summary>Symbolic links to merged layers that were left where they are, each with the reason (re-pointed since the plan, or not removable by this user).</summary>
    public IReadOnlyList<KeptLink> KeptLinks { get; init; } = Array.Empty<KeptLink>();
}

/// <summary>A symbolic link a merge left in place although the layer it named was merged away.</summary>
/// <param name="Link">The link's path.</param>
/// <param name="Reason">Why it was left, in words for a note ("it now leads to ...", "permission denied ...").</param>
public sealed record KeptLink(string Link, string Reason);
