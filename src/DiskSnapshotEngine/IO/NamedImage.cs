namespace DiskSnapshotEngine.IO;

/// <summary>
/// An image as a verb was given it, and the file that name leads to: one rule for every verb that rewrites or merges an
/// image named through a symbolic link, QEMU's. The chain is opened at <see cref="Path"/>, so a relative parent link is
/// looked for beside the link (QEMU combines a relative backing name with the image's name as given, not with its
/// realpath). What is written, replaced by a rename, removed, locked and journaled is <see cref="File"/>, the link's
/// target, so the link stays a link naming the new content (and <see cref="FileNode.Target"/> applies the kernel's
/// fs.protected_symlinks rule to it).
/// </summary>
/// <param name="Path">The full path as given (a link, when it is one).</param>
/// <param name="File">The full path of the file it finally names.</param>
internal readonly record struct NamedImage(string Path, string File)
{
    /// <summary>The image at <paramref name="path"/>.</summary>
    /// <exception cref="Errors.DiskImageException">ReadOnly: a link the kernel's fs.protected_symlinks would not follow.</exception>
    public static NamedImage Of(string path) => new(System.IO.Path.GetFullPath(path), FileNode.Target(path));

    /// <summary>
    /// Refuses (ReadOnly) a link on <paramref name="path"/>'s way that the kernel's fs.protected_symlinks would not
    /// follow: a verb that will write, rename or remove the file it leads to calls it before changing anything.
    /// </summary>
    /// <exception cref="Errors.DiskImageException">ReadOnly: a link the kernel would not follow.</exception>
    public static void RequireFollowable(string path) => FileNode.Target(path);

    /// <summary>True when <paramref name="path"/> leads to <see cref="File"/> (a link re-pointed since leads elsewhere).</summary>
    public bool LeadsHere(string path) =>
        FileNode.IsRegularFile(path) && FileNode.IsRegularFile(File) && FileNode.Of(path).SameFileAs(FileNode.Of(File));
}
