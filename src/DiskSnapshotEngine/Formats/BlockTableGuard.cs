using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;

namespace DiskSnapshotEngine.Formats;

/// <summary>
/// Refuses the first change of a write session when the layer's block table is damaged: two entries that point at the
/// same file block (cross-linked), or an entry inside the header area or past the end of the file. Writing into such
/// a block would silently change another one, so every writer (write, merge, pull, rebase, serve, the snapshot verbs)
/// stops with CorruptImage (exit 4) before its first byte. The layer's own check finds them: one scan per session.
/// </summary>
internal static class BlockTableGuard
{
    /// <summary>Throws when <paramref name="layer"/>'s check reports an error in <paramref name="tableStructure"/>.</summary>
    /// <exception cref="DiskImageException">CorruptImage naming the entry and what is wrong with it.</exception>
    public static void Refuse(IDiskLayer layer, string tableStructure)
    {
        var bad = layer.Check().Problems.FirstOrDefault(p => p.Severity == CheckSeverity.Error && p.Structure == tableStructure);
        if (bad is null) return;
        throw new DiskImageException(ErrorKind.CorruptImage,
            $"refusing to write: {bad.Message}; a write could change another block ('dse check' lists every problem)",
            layer.Path, bad.Structure, bad.FileOffset);
    }
}
