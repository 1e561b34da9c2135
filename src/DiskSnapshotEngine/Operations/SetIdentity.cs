using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Operations;

/// <summary>What set-identity did.</summary>
/// <param name="Image">The image.</param>
/// <param name="OldId">Its disk id before.</param>
/// <param name="NewId">Its disk id now.</param>
public sealed record SetIdentityResult(string Image, Guid OldId, Guid NewId);

/// <summary>
/// Gives an image a new disk id in place (VHDX Virtual Disk ID, VDI uuidCreate, VHD Unique Id; with a new content version), so that a
/// copy made with <c>cp</c> can be registered beside its original. Content and parent link are unchanged. Refused on an
/// image that others read through: they link to the old identity.
/// </summary>
public static class SetIdentity
{
    /// <summary>Gives <paramref name="image"/> a fresh random disk id.</summary>
    /// <exception cref="DiskImageException">Unsupported (a format without a disk id), ReadOnly (children, listed; a sealed image), Locked, open and I/O errors.</exception>
    public static SetIdentityResult NewId(string image, OpenOptions? options = null)
    {
        options ??= OpenOptions.ReadOnly;
        image = Path.GetFullPath(image);
        using var scope = LockScope.Begin();
        scope.Lock(image);
        Guid old;
        using (var probe = DiskImage.OpenLayer(image, writable: false, options.FileOpener))
        {
            if (probe is not IIdentityWritable)
                throw new DiskImageException(ErrorKind.Unsupported, probe.Identity == default
                    ? $"a {probe.Format.ToString().ToLowerInvariant()} image records no disk id that could be changed"
                    : $"a new disk id for a {probe.Format.ToString().ToLowerInvariant()} image is not supported (VHDX, VDI and VHD are)", image);
            var folders = Dependents.FoldersOf(probe, options);
            var children = Dependents.ChildrenOf(probe, folders, options);
            // Children that find their parent by id (VDI) also "link" to a cp copy of that parent; the copy may take a
            // new id when the original (same id and version) is still there for them to read through.
            if (!children.All(c => LinksById(c, options)) || Twin(probe, folders, options) is null)
                Dependents.RefuseChildren(probe, options, "give it a new identity", children);
            // A sealed image may have readers in folders nobody searched: only the user can say it has none (unseal).
            Seals.Check(probe, options.Sealed, "give it a new identity");
            old = probe.Identity.Id;
        }
        var id = Guid.NewGuid();
        using (var layer = DiskImage.OpenLayer(image, writable: true, options.FileOpener))
        {
            ((IIdentityWritable)layer).SetIdentity(id);
            layer.Flush();
        }
        return new SetIdentityResult(image, old, id);
    }

    private static bool LinksById(string child, OpenOptions options)
    {
        using var c = DiskImage.OpenLayer(child, writable: false, options.FileOpener);
        return c.ParentLink?.ParentId is not null;
    }

    // Another image in the folders with the same id and version: the original a copy was made from.
    private static string? Twin(IDiskLayer layer, IEnumerable<string> folders, OpenOptions options)
    {
        var self = FileNode.Of(layer.Path);
        foreach (var file in Dependents.ImagesIn(folders))
        {
            if (FileNode.Of(file).SameFileAs(self)) continue;
            try
            {
                using var other = DiskImage.OpenLayer(file, writable: false, options.FileOpener);
                if (other.Identity == layer.Identity) return other.Path;
            }
            catch (DiskImageException) { }
        }
        return null;
    }
}
