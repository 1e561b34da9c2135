namespace DiskSnapshotEngine.Block;

/// <summary>
/// A layer holding structures that live only in its own file and that a rewrite into a new file (compact) would not
/// carry over: the rewrite is refused, naming them, rather than silently dropping them.
/// </summary>
internal interface IRewriteLoss
{
    /// <summary>What a rewrite into a new file would drop, in words for an error message, or null when nothing.</summary>
    string? RewriteWouldLose { get; }
}
