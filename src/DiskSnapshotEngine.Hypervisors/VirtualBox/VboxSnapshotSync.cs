using System.Xml.Linq;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Hypervisors.Model;

namespace DiskSnapshotEngine.Hypervisors.VirtualBox;

/// <summary>
/// Keeps an existing .vbox machine file in step with the snapshot operations done on one of its disks: the disk's
/// MediaRegistry tree, the Snapshot elements and the attachments of the current state and of each snapshot.
/// Everything else (other disks, hardware, extra data, comments, attributes we do not know, the old innotek namespace)
/// is left as it was: existing elements are edited in place, never rebuilt.
/// </summary>
public static class VboxSnapshotSync
{
    /// <summary>Loads <paramref name="vboxPath"/>, applies <paramref name="state"/>, and replaces the file atomically (old copy kept as <c>-prev</c>).</summary>
    /// <exception cref="DiskImageException">FileNotFound, InvalidFormat, InvalidArgument, Unsupported, Io.</exception>
    public static void SyncFile(string vboxPath, VmDiskState state)
    {
        var doc = AtomicXmlFile.Load(vboxPath);
        Apply(doc, state, vboxPath);
        AtomicXmlFile.Save(doc, vboxPath);
    }

    /// <summary>
    /// Reads back the state of the disk whose base image has id <paramref name="rootId"/>: its media tree, the medium
    /// the current state attaches, and the snapshots (each with the medium of this disk it attaches).
    /// Sizes are unknown to a settings file and read as 0.
    /// </summary>
    /// <exception cref="DiskImageException">InvalidFormat when the file does not describe that disk consistently.</exception>
    public static VmDiskState ReadDiskState(XDocument doc, Guid rootId, string vboxPath)
    {
        var (ns, machine) = VboxXml.MachineOf(doc, vboxPath);
        var folder = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(vboxPath))!;
        var rootEl = TopLevelDisks(machine, ns).FirstOrDefault(d => IdOf(d, vboxPath) == rootId)
            ?? throw new DiskImageException(ErrorKind.InvalidFormat, $"no base HardDisk {VboxXml.Uuid(rootId)} in the MediaRegistry", vboxPath, "MediaRegistry");
        var root = ReadMedium(rootEl, ns, folder, vboxPath);
        var ids = root.DescendantsAndSelf().Select(m => m.Id).ToHashSet();
        var current = AttachmentsOf(OwnHardwareScopes(machine, ns), ns, ids, vboxPath).FirstOrDefault();
        if (current == Guid.Empty)
            throw new DiskImageException(ErrorKind.InvalidFormat, "the current state attaches no image of this disk", vboxPath, "StorageControllers");
        var snapRoot = machine.Element(ns + "Snapshot");
        var snaps = snapRoot is null ? Array.Empty<SnapshotInfo>() : new[] { ReadSnapshot(snapRoot, ns, ids, vboxPath) };
        var curSnap = (string?)machine.Attribute("currentSnapshot") is string cs ? VboxXml.ParseUuid(cs, vboxPath, "Machine/@currentSnapshot") : (Guid?)null;
        return new VmDiskState(root, current, snaps, curSnap);
    }

    /// <summary>Applies <paramref name="state"/> to the document in place.</summary>
    /// <exception cref="DiskImageException">InvalidFormat for a file that is not a machine file; InvalidArgument/Unsupported for a state VirtualBox cannot hold.</exception>
    public static void Apply(XDocument doc, VmDiskState state, string vboxPath)
    {
        state.Validate();
        VboxMachineWriter.CheckVirtualBoxCanOpen(state);
        var (ns, machine) = VboxXml.MachineOf(doc, vboxPath);
        var folder = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(vboxPath))!;

        // Ids that denote "this disk" in attachments: everything in the new tree and everything the file had for it.
        var newIds = state.AllMedia.Select(m => m.Id).ToHashSet();
        var diskIds = new HashSet<Guid>(newIds);
        SyncMediaRegistry(machine, ns, state, folder, vboxPath, diskIds);

        SyncSnapshots(machine, ns, state, diskIds, vboxPath);

        foreach (var image in OwnHardwareScopes(machine, ns).SelectMany(s => VboxXml.AttachedImages(s, ns)))
            Retarget(image, diskIds, state.CurrentMediumId, vboxPath);

        if (state.CurrentSnapshotId is Guid cur) SetIfDifferent(machine, "currentSnapshot", VboxXml.Uuid(cur), a => VboxXml.ParseUuid(a, vboxPath, "Machine/@currentSnapshot") == cur);
        else machine.Attribute("currentSnapshot")?.Remove();
    }

    // ---- media registry ----

    private static void SyncMediaRegistry(XElement machine, XNamespace ns, VmDiskState state, string folder, string path, HashSet<Guid> diskIds)
    {
        var registry = machine.Element(ns + "MediaRegistry");
        if (registry is null)
        {
            registry = new XElement(ns + "MediaRegistry");
            machine.AddFirst(registry);
        }
        var hardDisks = registry.Element(ns + "HardDisks");
        if (hardDisks is null)
        {
            hardDisks = new XElement(ns + "HardDisks");
            registry.AddFirst(hardDisks);
        }
        var existing = hardDisks.Descendants(ns + "HardDisk").FirstOrDefault(d => diskIds.Contains(IdOf(d, path)));
        if (existing is null)
        {
            hardDisks.Add(VboxXml.HardDisk(ns, state.Root, isBase: true));
            return;
        }
        var top = existing.AncestorsAndSelf(ns + "HardDisk").Last();
        foreach (var d in top.DescendantsAndSelf(ns + "HardDisk")) diskIds.Add(IdOf(d, path));
        // The schema does not catch a UUID registered twice, but VirtualBox refuses to load such a file.
        foreach (var other in hardDisks.Descendants(ns + "HardDisk").Where(d => d.AncestorsAndSelf(ns + "HardDisk").Last() != top))
            if (diskIds.Contains(IdOf(other, path)))
                throw new DiskImageException(ErrorKind.InvalidArgument,
                    $"image {(string?)other.Attribute("uuid")} belongs to another disk of this machine ({(string?)other.Attribute("location")})",
                    path, "MediaRegistry/HardDisks");
        if (IdOf(top, path) != state.Root.Id)
            throw new DiskImageException(ErrorKind.InvalidArgument,
                $"the file's image tree for this disk starts at {(string?)top.Attribute("uuid")}, but the disk's base image is {VboxXml.Uuid(state.Root.Id)}",
                path, "MediaRegistry/HardDisks");
        SyncDisk(top, state.Root, ns, folder, path);
    }

    private static void SyncDisk(XElement el, MediumInfo medium, XNamespace ns, string folder, string path)
    {
        var loc = (string?)el.Attribute("location");
        if (loc is null || !SamePath(Resolve(loc, folder), medium.Path)) el.SetAttributeValue("location", medium.Path);
        if (!string.Equals((string?)el.Attribute("format"), medium.Format, StringComparison.OrdinalIgnoreCase))
            el.SetAttributeValue("format", medium.Format);
        var wanted = medium.Children.ToDictionary(c => c.Id);
        foreach (var child in el.Elements(ns + "HardDisk").ToList())
        {
            if (wanted.Remove(IdOf(child, path), out var m)) SyncDisk(child, m, ns, folder, path);
            else child.Remove(); // merged away or deleted: VirtualBox must not look for it any more
        }
        // New children go last: the schema orders Description, Property*, then HardDisk*.
        foreach (var m in medium.Children.Where(c => wanted.ContainsKey(c.Id)))
            el.Add(VboxXml.HardDisk(ns, m, isBase: false));
    }

    // ---- snapshots ----

    private static void SyncSnapshots(XElement machine, XNamespace ns, VmDiskState state, HashSet<Guid> diskIds, string path)
    {
        var oldRoot = machine.Element(ns + "Snapshot");
        var existing = new Dictionary<Guid, XElement>();
        if (oldRoot is not null)
            foreach (var s in oldRoot.DescendantsAndSelf(ns + "Snapshot"))
                existing[VboxXml.ParseUuid((string?)s.Attribute("uuid"), path, "Snapshot/@uuid")] = s;

        // The template for a snapshot new to this file is the current state's hardware, as VirtualBox copies it when it takes one.
        var template = OwnHardwareScopes(machine, ns).Select(e => new XElement(e)).ToList();

        XNode? anchor = oldRoot?.PreviousNode;
        bool hadRoot = oldRoot is not null;
        // Detach every snapshot from its parent; the tree is re-linked from the model below, reusing the elements.
        foreach (var s in existing.Values)
            foreach (var list in s.Elements(ns + "Snapshots"))
                list.Elements(ns + "Snapshot").Remove();
        oldRoot?.Remove();

        if (state.Snapshots.Count == 0)
        {
            foreach (var s in existing.Values) RemoveEmptySnapshotsList(s, ns);
            return;
        }
        var newRoot = Build(state.Snapshots[0]);
        foreach (var s in existing.Values) RemoveEmptySnapshotsList(s, ns);
        if (hadRoot && anchor is not null && anchor.Parent == machine) anchor.AddAfterSelf(newRoot);
        else if (hadRoot && anchor is null) machine.AddFirst(newRoot);
        else if (machine.Element(ns + "MediaRegistry") is XElement reg) reg.AddAfterSelf(newRoot);
        else machine.AddFirst(newRoot);

        XElement Build(SnapshotInfo s)
        {
            if (!existing.TryGetValue(s.Id, out var el))
            {
                el = new XElement(ns + "Snapshot",
                    new XAttribute("uuid", VboxXml.Uuid(s.Id)),
                    new XAttribute("name", s.Name),
                    new XAttribute("timeStamp", VboxXml.Time(s.Time)),
                    template.Select(t => new XElement(t)));
            }
            SetIfDifferent(el, "name", s.Name, a => a == s.Name);
            SetIfDifferent(el, "timeStamp", VboxXml.Time(s.Time), a => VboxXml.ParseTime(a, path, "Snapshot/@timeStamp") == s.Time);
            var desc = el.Element(ns + "Description");
            if (s.Description is null) desc?.Remove();
            else if (desc is null) el.AddFirst(new XElement(ns + "Description", s.Description));
            else if (desc.Value != s.Description) desc.Value = s.Description;
            foreach (var image in SnapshotHardwareScopes(el, ns).SelectMany(x => VboxXml.AttachedImages(x, ns)))
                Retarget(image, diskIds, s.AttachedMediumId, path);
            if (s.Children.Count > 0)
            {
                var list = el.Element(ns + "Snapshots");
                if (list is null) el.Add(list = new XElement(ns + "Snapshots"));
                foreach (var c in s.Children) list.Add(Build(c));
            }
            return el;
        }
    }

    private static void RemoveEmptySnapshotsList(XElement snapshot, XNamespace ns)
    {
        foreach (var list in snapshot.Elements(ns + "Snapshots").ToList())
            if (!list.Nodes().Any() && !list.HasAttributes) list.Remove();
    }

    // ---- helpers ----

    /// <summary>The current state's hardware: Machine/Hardware, plus Machine/StorageControllers in the old layout (libvirt's files).</summary>
    private static IEnumerable<XElement> OwnHardwareScopes(XElement machine, XNamespace ns) =>
        new[] { machine.Element(ns + "Hardware"), machine.Element(ns + "StorageControllers") }.OfType<XElement>();

    private static IEnumerable<XElement> SnapshotHardwareScopes(XElement snapshot, XNamespace ns) =>
        new[] { snapshot.Element(ns + "Hardware"), snapshot.Element(ns + "StorageControllers") }.OfType<XElement>();

    private static void Retarget(XElement image, HashSet<Guid> diskIds, Guid target, string path)
    {
        var id = VboxXml.ParseUuid((string?)image.Attribute("uuid"), path, "AttachedDevice/Image/@uuid");
        if (diskIds.Contains(id) && id != target) image.SetAttributeValue("uuid", VboxXml.Uuid(target));
    }

    private static void SetIfDifferent(XElement el, string name, string value, Func<string, bool> sameAs)
    {
        var a = (string?)el.Attribute(name);
        if (a is null || !sameAs(a)) el.SetAttributeValue(name, value);
    }

    private static IEnumerable<XElement> TopLevelDisks(XElement machine, XNamespace ns) =>
        machine.Element(ns + "MediaRegistry")?.Element(ns + "HardDisks")?.Elements(ns + "HardDisk") ?? Enumerable.Empty<XElement>();

    private static Guid IdOf(XElement hardDisk, string path) =>
        VboxXml.ParseUuid((string?)hardDisk.Attribute("uuid"), path, "HardDisk/@uuid");

    private static MediumInfo ReadMedium(XElement el, XNamespace ns, string folder, string path) =>
        new(IdOf(el, path),
            Resolve((string?)el.Attribute("location") ?? throw new DiskImageException(ErrorKind.InvalidFormat, "HardDisk without location", path, "HardDisk/@location"), folder),
            ((string?)el.Attribute("format") ?? "").ToUpperInvariant(),
            0,
            el.Elements(ns + "HardDisk").Select(c => ReadMedium(c, ns, folder, path)).ToList());

    private static SnapshotInfo ReadSnapshot(XElement el, XNamespace ns, HashSet<Guid> ids, string path)
    {
        var id = VboxXml.ParseUuid((string?)el.Attribute("uuid"), path, "Snapshot/@uuid");
        var attached = AttachmentsOf(SnapshotHardwareScopes(el, ns), ns, ids, path).FirstOrDefault();
        if (attached == Guid.Empty)
            throw new DiskImageException(ErrorKind.InvalidFormat, $"snapshot {VboxXml.Uuid(id)} attaches no image of this disk", path, "Snapshot");
        return new SnapshotInfo(id,
            (string?)el.Attribute("name") ?? "",
            el.Element(ns + "Description")?.Value,
            VboxXml.ParseTime((string?)el.Attribute("timeStamp"), path, "Snapshot/@timeStamp"),
            attached,
            el.Elements(ns + "Snapshots").Elements(ns + "Snapshot").Select(c => ReadSnapshot(c, ns, ids, path)).ToList());
    }

    private static IEnumerable<Guid> AttachmentsOf(IEnumerable<XElement> scopes, XNamespace ns, HashSet<Guid> ids, string path) =>
        scopes.SelectMany(s => VboxXml.AttachedImages(s, ns))
            .Select(i => VboxXml.ParseUuid((string?)i.Attribute("uuid"), path, "AttachedDevice/Image/@uuid"))
            .Where(ids.Contains);

    /// <summary>VirtualBox resolves a relative location against the machine folder.</summary>
    private static string Resolve(string location, string folder) =>
        System.IO.Path.GetFullPath(System.IO.Path.IsPathRooted(location) ? location : System.IO.Path.Combine(folder, location));

    private static bool SamePath(string a, string b) =>
        string.Equals(System.IO.Path.GetFullPath(a), System.IO.Path.GetFullPath(b),
            OperatingSystem.IsWindows() || OperatingSystem.IsMacOS() ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal);
}
