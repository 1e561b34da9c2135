using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Operations;

/// <summary>
/// Opens a chain like <see cref="DiskImage.Open(string, OpenOptions?)"/>, except that one chosen layer below the top is opened for writing
/// (the target of a merge). Parents are resolved and verified exactly as the chain does; the chosen layer is then
/// reopened writable, which takes its exclusive lock, and checked to be the same image.
/// </summary>
internal static class ChainOpener
{
    /// <summary>Opens the chain of <paramref name="path"/> with layer <paramref name="writableIndex"/> writable (-1: none).</summary>
    public static DiskChain Open(string path, OpenOptions options, int writableIndex) =>
        DiskImage.Open(path, options with { Writable = false }, writableIndex);

    /// <summary>Index in <paramref name="chain"/> of the layer stored at <paramref name="path"/>, or -1.</summary>
    public static int IndexOf(DiskChain chain, string path)
    {
        if (!FileNode.IsRegularFile(path)) return -1;
        var node = FileNode.Of(path);
        for (int i = 0; i < chain.Layers.Count; i++)
            if (FileNode.Of(chain.Layers[i].Path).SameFileAs(node)) return i;
        return -1;
    }
}
