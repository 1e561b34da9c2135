using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Snapshots;
using CatalogEntry = DiskSnapshotEngine.Snapshots.SnapshotEntry;

namespace DiskSnapshotEngine.Hypervisors.Model;

/// <summary>
/// Builds a <see cref="VmDiskState"/> from a disk's snapshot catalog (<see cref="DiskSnapshots"/>): every image of the
/// disk (each snapshot's frozen layer, branches left by reverts, the current state and any base below them) as one
/// media tree, and the catalog's snapshots as the snapshot tree over it.
/// <para>The media tree follows the images' own parent links (each image's chain is opened the way <c>dse</c> opens
/// it), not the catalog: the structure is the truth and the catalog names it. Snapshots come from the catalog.</para>
/// <para>VirtualBox's meaning of a snapshot, which the catalog's layout matches one to one: a Snapshot element attaches
/// the image that was current when the snapshot was taken and is immutable from then on (its frozen layer, here the
/// snapshot's layer file); the image created at that moment is a differencing child of it, and the current state
/// attaches a leaf. So a snapshot's <see cref="SnapshotInfo.AttachedMediumId"/> is the id of its own layer file.</para>
/// </summary>
public static class SnapshotCatalogState
{
    /// <summary>
    /// The disk's state: from its snapshot catalog when it has snapshots, otherwise from its chain alone
    /// (<see cref="VmDiskStateBuilder.FromChain"/>).
    /// </summary>
    /// <exception cref="DiskImageException">Open errors of any image; CorruptImage (unreadable catalog); InvalidArgument
    /// (an unfinished snapshot operation); ChainInvalid (images that do not form one tree).</exception>
    public static VmDiskState ForDisk(string disk, OpenOptions? options = null)
    {
        disk = System.IO.Path.GetFullPath(disk);
        var open = (options ?? OpenOptions.ReadOnly) with { Writable = false };
        var catalog = DiskSnapshots.Catalog(disk);
        if (catalog.Snapshots.Count == 0 && catalog.Pending is null)
        {
            using var chain = DiskImage.Open(disk, open);
            return VmDiskStateBuilder.FromChain(chain);
        }
        return FromCatalog(disk, catalog, open);
    }

    /// <summary>The state described by <paramref name="catalog"/>, the catalog of <paramref name="disk"/>.</summary>
    /// <exception cref="DiskImageException">See <see cref="ForDisk"/>.</exception>
    public static VmDiskState FromCatalog(string disk, SnapshotCatalog catalog, OpenOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        disk = System.IO.Path.GetFullPath(disk);
        var open = (options ?? OpenOptions.ReadOnly) with { Writable = false };
        if (catalog.Pending is { } p)
            throw new DiskImageException(ErrorKind.InvalidArgument,
                $"an interrupted snapshot {p.Operation} of '{p.Snapshot.Name}' is not finished; run 'dse snapshot {p.Operation}' " +
                "(or any snapshot create, revert or rollback for a create or revert) to finish it first", disk);

        var nodes = new Dictionary<string, Node>(PathComparer);
        var layerOf = new Dictionary<Guid, string>();
        foreach (var entry in catalog.Snapshots)
        {
            string path = System.IO.Path.GetFullPath(DiskSnapshots.PathOf(disk, entry));
            layerOf[entry.Id] = path;
            AddChain(path, entry, nodes, open);
        }
        AddChain(disk, null, nodes, open);

        var roots = nodes.Values.Where(n => n.ParentPath is null).ToList();
        if (roots.Count != 1)
            throw new DiskImageException(ErrorKind.ChainInvalid,
                $"the disk's images do not share one base image (bases: {string.Join("; ", roots.Select(r => r.Path))})", disk, "snapshot catalog");
        var byParent = nodes.Values.Where(n => n.ParentPath is not null).ToLookup(n => n.ParentPath!, PathComparer);
        MediumInfo Medium(Node n) => new(n.Id, n.Path, n.Format, n.Size,
            byParent[n.Path]
                // Snapshot layers in the order they were taken, the current state last (it is the newest image).
                .OrderBy(c => c.Path == disk ? 1 : 0).ThenBy(c => c.Snapshot?.Created ?? DateTimeOffset.MinValue).ThenBy(c => c.Path, PathComparer)
                .Select(Medium).ToList(), n.Seal);
        var root = Medium(roots[0]);

        var ids = catalog.Snapshots.Select(s => s.Id).ToHashSet();
        var children = catalog.Snapshots.Where(s => s.Parent is Guid g && ids.Contains(g)).ToLookup(s => s.Parent!.Value);
        SnapshotInfo Snapshot(CatalogEntry e) => new(e.Id, e.Name, e.Description, e.Created, nodes[layerOf[e.Id]].Id,
            children[e.Id].OrderBy(c => c.Created).Select(Snapshot).ToList());
        var snapshots = catalog.Snapshots.Where(s => s.Parent is not Guid g || !ids.Contains(g)).OrderBy(s => s.Created).Select(Snapshot).ToList();

        // The current snapshot is the one whose layer the disk's file links to (as DiskSnapshots decides it); the
        // catalog's own record is the fallback for a disk whose parent is not a snapshot layer.
        var current = nodes[disk];
        Guid? currentSnapshot = catalog.Snapshots.FirstOrDefault(s => current.ParentPath is string pp && PathComparer.Equals(layerOf[s.Id], pp))?.Id
            ?? catalog.Current;
        if (currentSnapshot is null && snapshots.Count > 0)
            throw new DiskImageException(ErrorKind.InvalidArgument,
                "the current state descends from no snapshot of the catalog, which VirtualBox cannot express; revert to a snapshot first", disk, "snapshot catalog");

        var state = new VmDiskState(root, current.Id, snapshots, currentSnapshot);
        state.Validate();
        return state;
    }

    private sealed record Node(string Path, Guid Id, string Format, long Size, string? ParentPath, CatalogEntry? Snapshot,
        DiskSnapshotEngine.Block.SealReasons Seal);

    private static readonly StringComparer PathComparer =
        OperatingSystem.IsWindows() || OperatingSystem.IsMacOS() ? StringComparer.OrdinalIgnoreCase : StringComparer.Ordinal;

    // Opens the image's chain and records it and every ancestor; an image reached twice must name the same parent.
    private static void AddChain(string path, CatalogEntry? snapshot, Dictionary<string, Node> nodes, OpenOptions open)
    {
        try
        {
            using var chain = DiskImage.Open(path, open);
            for (int i = 0; i < chain.Layers.Count; i++)
            {
                var layer = chain.Layers[i];
                string full = System.IO.Path.GetFullPath(layer.Path);
                string? parent = i + 1 < chain.Layers.Count ? System.IO.Path.GetFullPath(chain.Layers[i + 1].Path) : null;
                if (nodes.TryGetValue(full, out var known))
                {
                    if (!PathComparer.Equals(known.ParentPath ?? "", parent ?? ""))
                        throw new DiskImageException(ErrorKind.ChainInvalid,
                            $"the image's parent is {parent ?? "none"} through one chain and {known.ParentPath ?? "none"} through another", full, "parent link");
                    if (i == 0 && snapshot is not null && known.Snapshot is null) nodes[full] = known with { Snapshot = snapshot };
                    break; // its ancestors are recorded already
                }
                var id = layer.Identity.Id == Guid.Empty ? VmDiskStateBuilder.PathDerivedId(full) : layer.Identity.Id;
                nodes[full] = new Node(full, id, MediumFormats.Of(layer.Format), layer.VirtualSize, parent, i == 0 ? snapshot : null,
                    DiskSnapshotEngine.Block.Seals.Of(layer));
            }
        }
        catch (DiskImageException e) when (snapshot is not null && e.Kind != ErrorKind.ChainInvalid)
        {
            throw new DiskImageException(e.Kind,
                $"snapshot '{snapshot.Name}': {e.Detail} ('dse snapshot repair' rebuilds the catalog from the images)", e.Path ?? path, e.Structure, e.FileOffset, e);
        }
    }
}
