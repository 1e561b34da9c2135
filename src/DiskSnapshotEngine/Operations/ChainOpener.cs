using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Operations;

/// <summary>
/// Opens a chain like <see cref="DiskImage.Open"/>, except that one chosen layer below the top is opened for writing
/// (the target of a merge). Parents are resolved and verified exactly as the chain does; the chosen layer is then
/// reopened writable, which takes its exclusive lock, and checked to be the same image.
/// </summary>
internal static class ChainOpener
{
    /// <summary>Opens the chain of <paramref name="path"/> with layer <paramref name="writableIndex"/> writable (-1: none).</summary>
    public static DiskChain Open(string path, OpenOptions options, int writableIndex)
    {
        options = options with { Writable = false };
        var layers = new List<IDiskLayer>();
        var nodes = new List<FileNode>();
        try
        {
            nodes.Add(FileNode.Of(path));
            layers.Add(DiskImage.OpenLayer(path, writableIndex == 0, options.FileOpener));
            while (layers[^1].ParentLink is not null)
            {
                if (layers.Count >= ChainRules.MaxDepth)
                    throw new DiskImageException(ErrorKind.ChainInvalid,
                        $"the parent chain is deeper than {ChainRules.MaxDepth} images", path, "parent link");
                var (parent, node) = ParentResolver.Open(layers[^1], options, nodes);
                if (layers.Count == writableIndex)
                {
                    var identity = parent.Identity;
                    string parentPath = parent.Path;
                    parent.Dispose();
                    parent = DiskImage.OpenLayer(parentPath, writable: true, options.FileOpener);
                    if (parent.Identity != identity)
                    {
                        parent.Dispose();
                        throw new DiskImageException(ErrorKind.ParentMismatch, "the parent changed while it was being opened", parentPath);
                    }
                }
                layers.Add(parent);
                nodes.Add(node);
            }
            return new DiskChain(layers);
        }
        catch
        {
            foreach (var l in layers) l.Dispose();
            throw;
        }
    }

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
