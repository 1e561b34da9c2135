using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Formats;

/// <summary>
/// Finds and verifies the parent of a differencing layer. Paths the child names are tried first, in the order
/// its format gives them; a parent named by identity (VDI) is then searched in the child's folder, the folders of
/// the paths it names, the caller's search paths and any extra location sources. A candidate is accepted when its
/// identity matches and its content version is the one the child recorded. For a child linked by path (VHDX) a named
/// path is the parent; for one linked by identity a named path is only a hint, and a hint that is missing, is not an
/// image or has another identity is passed over.
/// </summary>
internal static class ParentResolver
{
    /// <summary>Opens the verified parent of <paramref name="child"/> read-only.</summary>
    /// <param name="child">The differencing layer.</param>
    /// <param name="options">Search paths, overrides, file opener.</param>
    /// <param name="chainNodes">Files already in the chain, to refuse cycles.</param>
    /// <exception cref="DiskImageException">ParentNotFound (with every place looked), ParentMismatch, ChainInvalid, FileNotFound for a named path that is not a regular file.</exception>
    public static (IDiskLayer Layer, FileNode Node) Open(IDiskLayer child, OpenOptions options, IReadOnlyList<FileNode> chainNodes)
    {
        var link = child.ParentLink ?? throw new InvalidOperationException("layer has no parent");
        var looked = new List<string>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        DiskImageException? locked = null;

        foreach (var path in link.CandidatePaths)
        {
            if (!seen.Add(path)) continue;
            looked.Add(path);
            if (link.ParentId is Guid hinted)
            {
                if (TryByIdentity(child, path, hinted, link, options, chainNodes, ref locked) is { } found) return found;
                continue;
            }
            if (!File.Exists(path) && !Directory.Exists(path) && !IsSymlink(path)) continue;
            // A path the image itself names must be a usable file: a FIFO, device, directory or loop is an error, not a miss.
            var node = FileNode.Of(path, "parent image");
            RefuseCycle(child, node, chainNodes);
            var layer = OpenCandidate(path, options, strict: true, ref locked, link.ParentFormat)!;
            if (link.ParentId is Guid id && layer.Identity.Id != id)
            {
                layer.Dispose();
                continue;
            }
            return (Verify(child, link, layer, options), node);
        }

        if (link.ParentId is Guid wanted)
        {
            // A folder is listed, then its files are opened one by one: a parent renamed in between (another process
            // deleting a snapshot renames a merged layer into place) is missed although it is there. So a failed
            // search runs again, until a pass fails on the same folders as the one before it (at most 5 passes).
            // A successful search costs nothing extra; a parent that is really missing costs one more pass.
            string? previous = null;
            for (int pass = 0; pass < MaxSearchPasses; pass++)
            {
                foreach (var (path, where) in SearchLocations(child, options, wanted))
                {
                    looked.Add(where);
                    if (!seen.Add(path)) continue;
                    if (TryByIdentity(child, path, wanted, link, options, chainNodes, ref locked) is { } found) return found;
                }
                string now = Listing(child, options);
                if (now == previous) break;
                previous = now;
                seen.Clear();
            }
        }

        // A candidate another process holds may well be the parent (a snapshot operation moving layers, a VM): that
        // is a lock conflict naming the holder, not a missing parent.
        if (locked is not null) throw locked;
        string what = link.ParentId is Guid pid ? $"parent {{{pid}}}" : "parent";
        throw new DiskImageException(ErrorKind.ParentNotFound,
            $"{what} not found; looked in: {(looked.Count == 0 ? "(nowhere: the image names no location)" : string.Join("; ", looked.Distinct()))}",
            child.Path, "parent link");
    }

    // A file that may be the parent named by identity: any failure to be it (not a regular file, already in the chain,
    // not an image, another identity) only means "not here".
    private static (IDiskLayer Layer, FileNode Node)? TryByIdentity(IDiskLayer child, string path, Guid wanted, ParentLink link,
        OpenOptions options, IReadOnlyList<FileNode> chainNodes, ref DiskImageException? locked)
    {
        if (!FileNode.IsRegularFile(path)) return null;
        var node = FileNode.Of(path);
        if (chainNodes.Any(n => n.SameFileAs(node))) return null;
        var layer = OpenCandidate(path, options, strict: false, ref locked);
        if (layer is null) return null;
        if (layer.Identity.Id != wanted)
        {
            layer.Dispose();
            return null;
        }
        return (Verify(child, link, layer, options), node);
    }

    // File.Exists is false for a symlink loop or a dangling link; FileNode must still examine those and say why.
    private static bool IsSymlink(string path) => FileNode.LinkTargetOf(path) is not null;

    private static void RefuseCycle(IDiskLayer child, FileNode node, IReadOnlyList<FileNode> chainNodes)
    {
        // chainNodes runs from the top image down to the child whose parent is being resolved.
        if (!chainNodes.Any(n => n.SameFileAs(node))) return;
        throw new DiskImageException(ErrorKind.ChainInvalid,
            node.SameFileAs(chainNodes[^1])
                ? $"the parent link names the image itself ({node.FullPath})"
                : $"the parent chain loops: {node.FullPath} is already in the chain",
            child.Path, "parent link");
    }

    private static IDiskLayer? OpenCandidate(string path, OpenOptions options, bool strict, ref DiskImageException? locked,
        ImageFormat? format = null)
    {
        IImageFile? file = null;
        try
        {
            file = options.FileOpener(path, false);
            // A format the child records is used as is: a raw parent whose content looks like an image must not be probed.
            var driver = format is ImageFormat f ? ImageFormats.Get(f) : ImageFormats.Detect(file);
            var layer = driver.Open(file, writable: false);
            file = null;
            return layer;
        }
        catch (DiskImageException e) when (!strict)
        {
            if (e.Kind == ErrorKind.Locked) locked ??= e;
            return null;
        }
        finally
        {
            file?.Dispose();
        }
    }

    private static IDiskLayer Verify(IDiskLayer child, ParentLink link, IDiskLayer parent, OpenOptions options)
    {
        try
        {
            var version = parent.Identity.Version;
            // A format that records no parent version (qcow2) cannot detect a changed parent: nothing to compare.
            bool matches = link.ParentVersion is not Guid recorded || version == recorded || (link.AlternateParentVersion is Guid alt && version == alt);
            if (!matches && !options.IgnoreParentMismatch)
                throw new DiskImageException(ErrorKind.ParentMismatch,
                    $"{link.VersionName} {{{link.ParentVersion}}} does not match the parent {parent.Path}, whose version is {{{version}}}: " +
                    "the parent changed after this child was made (override with --ignore-parent-mismatch only if you know the content is the same)",
                    child.Path, "parent link");
            ChainRules.CheckCompatible(child, parent);
            return parent;
        }
        catch
        {
            parent.Dispose();
            throw;
        }
    }

    private const int MaxSearchPasses = 5;

    // The names in every searched folder with the file each names: a rename, a removal or a rename over an
    // existing name changes it.
    private static string Listing(IDiskLayer child, OpenOptions options) =>
        string.Join("\n", SearchFolders(child, options).SelectMany(ImagesIn).Select(f => $"{f} {InodeOf(f)}"));

    private static string InodeOf(string path)
    {
        // The file may vanish between listing and stat: that is a change too, not an error.
        try { return FileNode.Of(path).Inode.ToString(System.Globalization.CultureInfo.InvariantCulture); }
        catch (DiskImageException) { return "gone"; }
    }

    private static List<string> SearchFolders(IDiskLayer child, OpenOptions options)
    {
        var folders = new List<string>();
        if (System.IO.Path.GetDirectoryName(child.Path) is string dir) folders.Add(dir);
        // The folder a hint names is where a parent renamed in place (a snapshot layer, a moved-aside file) still is.
        if (child.ParentLink is { ParentId: not null } link)
            foreach (var hint in link.CandidatePaths)
                if (System.IO.Path.GetDirectoryName(hint) is string hintDir && !folders.Contains(hintDir)) folders.Add(hintDir);
        folders.AddRange(options.SearchPaths.Select(p => System.IO.Path.GetFullPath(p)));
        return folders;
    }

    // Yields (candidate file, where it was found); the folders are yielded even when empty so the error lists them.
    private static IEnumerable<(string Path, string Where)> SearchLocations(IDiskLayer child, OpenOptions options, Guid id)
    {
        foreach (var folder in SearchFolders(child, options))
        {
            if (!Directory.Exists(folder))
            {
                // A search path may name a file directly.
                yield return (folder, folder);
                continue;
            }
            yield return (folder, folder);
            foreach (var f in ImagesIn(folder)) yield return (f, folder);
        }
        foreach (var src in options.LocationSources)
            foreach (var f in src.FindCandidates(id))
                yield return (System.IO.Path.GetFullPath(f), $"{src.Description}: {f}");
    }

    private static IEnumerable<string> ImagesIn(string dir)
    {
        IEnumerable<string> files;
        try { files = Directory.EnumerateFiles(dir).ToList(); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { yield break; }
        foreach (var f in files.Order(StringComparer.Ordinal))
            if (ImageFormats.HasImageExtension(f))
                yield return f;
    }
}
