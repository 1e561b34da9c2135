using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Operations;

/// <summary>
/// Finds the images that depend on a layer (its differencing children). Images do not know their children, so
/// the only way is to look at the candidates' parent links: the folders beside the layer (where linked clones and
/// snapshot layers live) plus any folder the caller adds.
/// </summary>
internal static class Dependents
{
    /// <summary>True when <paramref name="child"/>'s parent link names <paramref name="parent"/>, resolved the way the chain resolves it.</summary>
    public static bool LinksTo(IDiskLayer child, IDiskLayer parent)
    {
        if (child.ParentLink is not { } link) return false;
        if (link.ParentId is Guid id) return id == parent.Identity.Id;
        // Path-linked formats (VHDX): the first candidate that exists is the one the chain opens.
        var target = FileNode.Of(parent.Path);
        foreach (var p in link.CandidatePaths)
        {
            if (!FileNode.IsRegularFile(p)) continue;
            return FileNode.Of(p).SameFileAs(target);
        }
        return false;
    }

    /// <summary>
    /// Paths of every image in <paramref name="folders"/> whose parent link names <paramref name="parent"/>,
    /// except the files in <paramref name="exclude"/>. Files that are not readable images are ignored. Files are opened
    /// with <paramref name="options"/>' opener (a locked one is peeked at with it too, as <see cref="OpenOptions.ForceShare"/>).
    /// </summary>
    public static List<string> ChildrenOf(IDiskLayer parent, IEnumerable<string> folders, OpenOptions options,
        IEnumerable<string>? exclude = null)
    {
        var excluded = (exclude ?? Array.Empty<string>()).Where(FileNode.IsRegularFile).Select(p => FileNode.Of(p)).ToList();
        var self = FileNode.Of(parent.Path);
        var found = new List<string>();
        foreach (var file in ImagesIn(folders))
        {
            var node = FileNode.Of(file);
            if (node.SameFileAs(self) || excluded.Any(e => e.SameFileAs(node))) continue;
            IDiskLayer? layer = null;
            try
            {
                layer = DiskImage.OpenLayer(file, writable: false, options.FileOpener);
                if (LinksTo(layer, parent)) found.Add(node.FullPath);
            }
            catch (DiskImageException e) when (e.Kind == ErrorKind.Locked)
            {
                // A file another process is writing (a VM beside this one) is read without a lock, as qemu-img -U
                // reads, for its parent link only: an unrelated image does not stop the verb. One that links here is
                // a child in use, and one whose header cannot be read now may be: not knowing is not "no". qcow2, VDI
                // and VHD headers carry no checksum, so a read in the middle of a header rewrite may name no parent
                // or another one: a "no" counts only when a second read says it too.
                var peek = options with { ForceShare = true };
                bool? links = PeekLinksTo(file, parent, peek);
                if (links == false && PeekLinksTo(file, parent, peek) != false) links = null;
                if (links == false) continue;
                string what = links == true ? $"{node.FullPath} reads through it and is in use" : $"cannot tell whether {node.FullPath} depends on {parent.Path}";
                throw new DiskImageException(ErrorKind.Locked, $"{what}: {e.Detail}", parent.Path, inner: e);
            }
            catch (DiskImageException) { }
            finally { layer?.Dispose(); }
        }
        return found;
    }

    // Whether the image at path links to parent, read without taking a lock (options ask for force share); null when
    // its header cannot be read.
    private static bool? PeekLinksTo(string path, IDiskLayer parent, OpenOptions options)
    {
        try
        {
            using var layer = DiskImage.OpenLayer(path, writable: false, options.FileOpener);
            return LinksTo(layer, parent);
        }
        catch (DiskImageException) { return null; }
    }

    /// <summary>
    /// Refuses (ReadOnly, naming them) when images beside <paramref name="layer"/> or in the search paths read through
    /// it: <paramref name="verb"/> would change what they read, or the identity they link to.
    /// </summary>
    public static void RefuseChildren(IDiskLayer layer, OpenOptions options, string verb) =>
        RefuseChildren(layer, options, verb, ChildrenOf(layer, FoldersOf(layer, options), options));

    /// <summary>The refusal of <see cref="RefuseChildren(IDiskLayer, OpenOptions, string)"/> for children already found.</summary>
    public static void RefuseChildren(IDiskLayer layer, OpenOptions options, string verb, IReadOnlyList<string> children)
    {
        if (children.Count > 0)
            throw new DiskImageException(ErrorKind.ReadOnly,
                $"cannot {verb}: {children.Count} image(s) read through it ({string.Join(", ", children)}); merge or delete them first", layer.Path);
    }

    /// <summary>Where children of <paramref name="layer"/> may be: its folder and the search paths.</summary>
    public static List<string> FoldersOf(IDiskLayer layer, OpenOptions options)
    {
        var folders = new List<string> { FolderOf(layer.Path) };
        folders.AddRange(options.SearchPaths.Where(Directory.Exists));
        return folders;
    }

    /// <summary>Candidate child images in the folders, each once, in a stable order.</summary>
    public static IEnumerable<string> ImagesIn(IEnumerable<string> folders)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var folder in folders.Select(Path.GetFullPath).Distinct())
        {
            List<string> files;
            try { files = Directory.EnumerateFiles(folder).Order(StringComparer.Ordinal).ToList(); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { continue; }
            foreach (var f in files)
                if (Formats.ImageFormats.HasImageExtension(f, linkableOnly: true) && FileNode.IsRegularFile(f) && seen.Add(f))
                    yield return f;
        }
    }

    /// <summary>The folder of a file.</summary>
    public static string FolderOf(string path) => Path.GetDirectoryName(Path.GetFullPath(path)) ?? "/";
}
