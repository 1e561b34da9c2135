namespace DiskSnapshotEngine.Block;

/// <summary>
/// A layer holding structures that live only in its own file, which a rewrite into a new file (compact, reset) must
/// either carry over (<see cref="CarryOver"/>) or refuse to drop (<see cref="RewriteWouldLose"/>): the rewrite is
/// refused, naming them, rather than silently dropping them.
/// </summary>
internal interface IRewriteLoss
{
    /// <summary>What a rewrite into a new file would drop, in words for an error message, or null when nothing.</summary>
    string? RewriteWouldLose { get; }

    /// <summary>
    /// Gives <paramref name="rewritten"/>, the new image a rewrite made of this one (same format, still empty), what
    /// this file holds that the rewrite can carry over as it is; nothing by default.
    /// </summary>
    void CarryOver(IDiskLayer rewritten)
    {
    }
}
