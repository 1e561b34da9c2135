using DiskSnapshotEngine.Errors;

namespace DiskSnapshotEngine.Hypervisors.Model;

/// <summary>
/// Everything a hypervisor needs to know about one virtual disk: the tree of image files, which one the running
/// state writes to, and the snapshot tree over them. Built from an opened chain (<see cref="VmDiskStateBuilder.FromChain"/>)
/// or from a disk's snapshot catalog (<see cref="SnapshotCatalogState"/>); this is the adapter boundary: whoever builds
/// it must satisfy <see cref="Validate"/>.
/// </summary>
/// <param name="Root">The base image and its differencing descendants.</param>
/// <param name="CurrentMediumId">The image the VM's current state attaches (a leaf of the tree).</param>
/// <param name="Snapshots">Root snapshots (VirtualBox allows at most one; its siblings go under it).</param>
/// <param name="CurrentSnapshotId">The snapshot the current state was created from, or null.</param>
public sealed record VmDiskState(MediumInfo Root, Guid CurrentMediumId, IReadOnlyList<SnapshotInfo> Snapshots, Guid? CurrentSnapshotId)
{
    /// <summary>Every medium, parents first.</summary>
    public IEnumerable<MediumInfo> AllMedia => Root.DescendantsAndSelf();

    /// <summary>Every snapshot, parents first.</summary>
    public IEnumerable<SnapshotInfo> AllSnapshots => Snapshots.SelectMany(s => s.DescendantsAndSelf());

    /// <summary>The medium with id <paramref name="id"/>, or null.</summary>
    public MediumInfo? FindMedium(Guid id) => AllMedia.FirstOrDefault(m => m.Id == id);

    /// <summary>The current medium.</summary>
    public MediumInfo CurrentMedium => FindMedium(CurrentMediumId)
        ?? throw new DiskImageException(ErrorKind.InvalidArgument, $"the current medium {CurrentMediumId} is not in the disk's image tree");

    /// <summary>The current medium and its ancestors, current first and the base last.</summary>
    public IReadOnlyList<MediumInfo> CurrentChain()
    {
        var parentOf = new Dictionary<Guid, MediumInfo>();
        foreach (var m in AllMedia)
            foreach (var c in m.Children) parentOf[c.Id] = m;
        var chain = new List<MediumInfo> { CurrentMedium };
        while (parentOf.TryGetValue(chain[^1].Id, out var parent)) chain.Add(parent);
        return chain;
    }

    /// <summary>This state with <paramref name="child"/> added under the current medium and made current (a new overlay).</summary>
    public VmDiskState WithNewCurrentChild(MediumInfo child)
    {
        MediumInfo Add(MediumInfo m) => m.Id == CurrentMediumId
            ? m with { Children = [.. m.Children, child] }
            : m with { Children = m.Children.Select(Add).ToList() };
        return this with { Root = Add(Root), CurrentMediumId = child.Id };
    }

    /// <summary>
    /// Checks the invariants every writer relies on: unique non-empty medium and snapshot ids, absolute paths, a current
    /// medium and snapshots that name media of the tree, a current snapshot that exists.
    /// </summary>
    /// <exception cref="DiskImageException">InvalidArgument naming the first broken rule.</exception>
    public void Validate()
    {
        var media = new HashSet<Guid>();
        foreach (var m in AllMedia)
        {
            if (m.Id == Guid.Empty) Fail($"image {m.Path} has no identity (an all-zero UUID)");
            if (!media.Add(m.Id)) Fail($"two images share the identity {m.Id} ({m.Path})");
            if (!System.IO.Path.IsPathFullyQualified(m.Path)) Fail($"image path {m.Path} is not absolute");
            if (m.LogicalSize < 0) Fail($"image {m.Path} has a negative size {m.LogicalSize}");
            if (string.IsNullOrWhiteSpace(m.Format)) Fail($"image {m.Path} has no format");
        }
        if (!media.Contains(CurrentMediumId)) Fail($"the current medium {CurrentMediumId} is not in the disk's image tree");
        var snaps = new HashSet<Guid>();
        foreach (var s in AllSnapshots)
        {
            if (s.Id == Guid.Empty) Fail($"snapshot '{s.Name}' has an all-zero id");
            if (!snaps.Add(s.Id)) Fail($"two snapshots share the id {s.Id}");
            if (string.IsNullOrWhiteSpace(s.Name)) Fail($"snapshot {s.Id} has no name");
            if (!media.Contains(s.AttachedMediumId)) Fail($"snapshot '{s.Name}' names image {s.AttachedMediumId}, which is not in the disk's image tree");
        }
        if (CurrentSnapshotId is Guid cur && !snaps.Contains(cur)) Fail($"the current snapshot {cur} is not in the snapshot tree");
        if (CurrentSnapshotId is null && snaps.Count > 0) Fail("there are snapshots but no current snapshot");
    }

    private static void Fail(string message) => throw new DiskImageException(ErrorKind.InvalidArgument, message);
}
