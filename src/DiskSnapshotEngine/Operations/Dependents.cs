using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Formats;
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
                // a child in use, and one whose header cannot be read now may be: not knowing is not "no".
                bool? links = PeekLinksTo(file, parent, options with { ForceShare = true });
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
    // its header cannot be read, or may have been read in the middle of a rewrite. qcow2, VDI and VHD headers carry no
    // checksum over the parent link (or dse accepts a copy), so a torn read may name no parent or another one: a "no"
    // counts only when a second read finds the same header bytes (LinkHeaderBytes) as before the first. A VHDX, whose
    // headers carry checksums and whose metadata changes through the log, is read once. The layer is opened once.
    private static bool? PeekLinksTo(string path, IDiskLayer parent, OpenOptions options)
    {
        try
        {
            var file = options.FileOpener(path, false);
            IDiskLayer layer;
            byte[] head;
            try
            {
                head = Head(file, 0, PeekHead);
                layer = ImageFormats.Detect(file).Open(file, false);
            }
            catch
            {
                file.Dispose();
                throw;
            }
            using (layer)
            {
                if (LinksTo(layer, parent)) return true;
                if (ImageFormats.Get(layer.Format).LinkHeaderBytes(layer) is not long bytes) return false;
                // Past the first read's bytes (a qcow2 with clusters over 64 KiB), compared from after the parse on.
                var rest = bytes > PeekHead ? Head(file, PeekHead, bytes - PeekHead) : [];
                using var again = options.FileOpener(path, false);
                return Head(again, 0, head.Length).AsSpan().SequenceEqual(head) && Head(again, PeekHead, rest.Length).AsSpan().SequenceEqual(rest) ? false : null;
            }
        }
        catch (DiskImageException) { return null; }
    }

    private const int PeekHead = 64 << 10;

    // Up to count bytes of the file from offset (fewer at its end).
    private static byte[] Head(IImageFile file, long offset, long count)
    {
        var buffer = new byte[Math.Clamp(file.Length - offset, 0, count)];
        int n = file.Read(buffer, offset);
        return n == buffer.Length ? buffer : buffer[..n];
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

    /// <summary>
    /// The folder of <paramref name="path"/> and, when the path reaches its file through a symbolic link, the folder of
    /// the real file: children made beside either read through the same file.
    /// </summary>
    public static IEnumerable<string> FoldersBeside(string path)
    {
        string folder = FolderOf(path);
        yield return folder;
        // Compared canonical to canonical: a folder reached through a linked folder (/tmp -> /private/tmp) is listed once.
        if (FileNode.Canonical(path) is { } real && FolderOf(real) is var realFolder && realFolder != FileNode.Canonical(folder))
            yield return realFolder;
    }
}
