using DiskSnapshotEngine.Operations;

namespace DiskSnapshotEngine.Snapshots;

/// <summary>What a snapshot delete did to symbolic links, as the merges it ran report them.</summary>
/// <param name="RemovedLinks">Symbolic links to merged layers that were removed with the files they named.</param>
/// <param name="KeptLinks">Symbolic links to merged layers that were left where they are, each with the reason.</param>
public sealed record SnapshotDeleteResult(IReadOnlyList<string> RemovedLinks, IReadOnlyList<KeptLink> KeptLinks)
{
    /// <summary>A delete that merged nothing (or whose merges touched no link).</summary>
    public static SnapshotDeleteResult None { get; } = new(Array.Empty<string>(), Array.Empty<KeptLink>());

    // A pull per child: the links each merge reports are gathered in order.
    internal SnapshotDeleteResult With(MergeResult merge) =>
        new([.. RemovedLinks, .. merge.RemovedLinks], [.. KeptLinks, .. merge.KeptLinks]);
}
