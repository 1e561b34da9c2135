using System.Xml.Linq;
using DiskSnapshotEngine.Hypervisors.Model;
using DiskSnapshotEngine.Hypervisors.VirtualBox;
using DiskSnapshotEngine.Tests.Infrastructure;
using static DiskSnapshotEngine.Tests.Hypervisors.HypervisorTestData;

namespace DiskSnapshotEngine.Tests.Hypervisors;

/// <summary>The real .vbox samples in ../shared/vbox/samples, read and updated without loss (old innotek namespace included).</summary>
public class VirtualBoxSnapshotSyncTests
{
    public static TheoryData<string> Samples => new() { "2disks-1snap.vbox", "2disks-3snap.vbox", "GOAD-DC01.vbox", "encrypted.vbox" };

    private static (string Path, XDocument Original, XNamespace Ns, Guid Root) Copy(TempDirectory dir, string sample)
    {
        var path = dir.File(sample);
        File.Copy(System.IO.Path.Combine(SamplesDirectory, sample), path);
        var doc = XDocument.Load(path);
        var ns = doc.Root!.Name.Namespace;
        var root = Guid.Parse(((string)doc.Descendants(ns + "HardDisks").First().Elements(ns + "HardDisk").First().Attribute("uuid")!).Trim('{', '}'));
        return (path, doc, ns, root);
    }

    [RequiresVboxSchemaTheory]
    [MemberData(nameof(Samples))]
    public void Syncing_the_state_read_from_a_sample_changes_nothing(string sample)
    {
        using var dir = new TempDirectory("vboxsync");
        var (path, original, _, root) = Copy(dir, sample);
        var originalBytes = File.ReadAllBytes(path);
        var state = VboxSnapshotSync.ReadDiskState(original, root, path);
        Assert.NotEmpty(state.AllSnapshots);

        VboxSnapshotSync.SyncFile(path, state);

        var after = XDocument.Load(path);
        Assert.True(XNode.DeepEquals(original.Root, after.Root), $"{sample} changed:\n{after}");
        Assert.Equal(originalBytes, File.ReadAllBytes(path + AtomicXmlFile.BackupSuffix));
        Assert.Equal(XDocument.Load(System.IO.Path.Combine(SamplesDirectory, sample)).Declaration?.Encoding, after.Declaration?.Encoding);
    }

    [RequiresVboxSchemaTheory]
    [MemberData(nameof(Samples))]
    public void Taking_a_snapshot_adds_exactly_one_medium_and_one_snapshot_and_keeps_everything_else(string sample)
    {
        using var dir = new TempDirectory("vboxsync");
        var (path, original, ns, root) = Copy(dir, sample);
        var before = VboxSnapshotSync.ReadDiskState(original, root, path);
        var oldCurrent = before.CurrentMediumId;
        var newMedium = Guid.NewGuid();
        var newSnap = Guid.NewGuid();
        var when = new DateTimeOffset(2026, 11, 21, 8, 0, 0, TimeSpan.Zero);
        var after = before with
        {
            Root = AddChild(before.Root, oldCurrent,
                new MediumInfo(newMedium, System.IO.Path.Combine(dir.Path, "Snapshots", $"{{{newMedium}}}.vdi"), MediumFormats.Vdi, 0, Array.Empty<MediumInfo>())),
            CurrentMediumId = newMedium,
            Snapshots = before.Snapshots.Select(s => AddSnapshot(s, before.CurrentSnapshotId!.Value,
                new SnapshotInfo(newSnap, "dse snapshot é'\"", "taken by a test", when, oldCurrent, Array.Empty<SnapshotInfo>()))).ToList(),
            CurrentSnapshotId = newSnap,
        };

        VboxSnapshotSync.SyncFile(path, after);
        var updated = XDocument.Load(path);
        var machine = updated.Root!.Element(ns + "Machine")!;
        Assert.All(updated.Descendants(), e => Assert.Equal(ns, e.Name.Namespace));

        // What changed is exactly what the state says.
        Assert.Equal("{" + newSnap + "}", (string?)machine.Attribute("currentSnapshot"));
        var medium = Assert.Single(updated.Descendants(ns + "HardDisk"), e => (string?)e.Attribute("uuid") == "{" + newMedium + "}");
        Assert.Equal("{" + oldCurrent + "}", (string?)medium.Parent!.Attribute("uuid"));
        var snap = Assert.Single(updated.Descendants(ns + "Snapshot"), e => (string?)e.Attribute("uuid") == "{" + newSnap + "}");
        Assert.Equal("2026-11-21T08:00:00Z", (string?)snap.Attribute("timeStamp"));
        Assert.Equal("dse snapshot é'\"", (string?)snap.Attribute("name"));
        Assert.Contains("{" + oldCurrent + "}", snap.Descendants(ns + "Image").Select(i => (string?)i.Attribute("uuid")));
        var reread = VboxSnapshotSync.ReadDiskState(updated, root, path);
        Assert.Equal(newMedium, reread.CurrentMediumId);
        Assert.Equal(before.AllSnapshots.Count() + 1, reread.AllSnapshots.Count());

        // Undo exactly those edits: what remains must equal the original, element for element and attribute for attribute.
        medium.Remove();
        var list = snap.Parent!;
        snap.Remove();
        if (!list.Nodes().Any()) list.Remove();
        foreach (var image in Scopes(machine, ns).SelectMany(s => s.Descendants(ns + "Image")).Where(i => (string?)i.Attribute("uuid") == "{" + newMedium + "}"))
            image.SetAttributeValue("uuid", "{" + oldCurrent + "}");
        machine.SetAttributeValue("currentSnapshot", (string?)original.Root!.Element(ns + "Machine")!.Attribute("currentSnapshot"));
        Assert.True(XNode.DeepEquals(original.Root, updated.Root), $"{sample}: something besides the snapshot changed");
    }

    [RequiresVboxSchemaFact]
    public void Updated_files_still_validate_against_the_schema_old_namespace_after_renaming_it()
    {
        using var dir = new TempDirectory("vboxsync");
        foreach (var sample in new[] { "GOAD-DC01.vbox", "2disks-3snap.vbox" })
        {
            var (path, original, ns, root) = Copy(dir, sample);
            var state = VboxSnapshotSync.ReadDiskState(original, root, path);
            var extra = Guid.NewGuid();
            state = state with
            {
                Root = AddChild(state.Root, state.CurrentMediumId, new MediumInfo(extra, dir.File("x.vdi"), MediumFormats.Vdi, 0, Array.Empty<MediumInfo>())),
                CurrentMediumId = extra,
            };
            VboxSnapshotSync.SyncFile(path, state);
            var check = dir.File("check-" + sample);
            // The libvirt samples use the innotek namespace, which the schema does not declare; their content validates once renamed.
            File.WriteAllText(check, File.ReadAllText(path).Replace("http://www.innotek.de/VirtualBox-settings", "http://www.virtualbox.org/", StringComparison.Ordinal));
            AssertValidatesAgainstVirtualBoxSchema(check);
        }
    }

    [RequiresVboxSchemaFact(needsXmllint: false)]
    public void Media_gone_from_the_disk_leave_the_registry_and_comments_stay()
    {
        using var dir = new TempDirectory("vboxsync");
        var (path, original, ns, root) = Copy(dir, "GOAD-DC01.vbox");
        var state = VboxSnapshotSync.ReadDiskState(original, root, path);
        var branch = Guid.Parse("35bf5129-1caa-4117-b20a-d73868d9d5d2"); // the hand-added branch no snapshot uses
        state = state with { Root = state.Root with { Children = state.Root.Children.Where(c => c.Id != branch).ToList() } };

        VboxSnapshotSync.SyncFile(path, state);
        var updated = XDocument.Load(path);
        var ids = updated.Descendants(ns + "HardDisk").Select(e => (string?)e.Attribute("uuid")).ToList();
        Assert.DoesNotContain("{35bf5129-1caa-4117-b20a-d73868d9d5d2}", ids);
        Assert.DoesNotContain("{706a96fe-0e11-4985-af32-7561d26612d4}", ids);
        Assert.Equal(3, ids.Count);
        Assert.Contains(updated.DescendantNodes().OfType<XComment>(), c => c.Value.Contains("I ignored the big warning", StringComparison.Ordinal));
        Assert.Equal("/GOAD", (string?)updated.Descendants(ns + "Group").Single().Attribute("name"));
    }

    [RequiresVboxSchemaFact(needsXmllint: false)]
    public void An_image_id_of_another_disk_is_refused_and_the_file_is_not_touched()
    {
        using var dir = new TempDirectory("vboxsync");
        var (path, original, _, root) = Copy(dir, "2disks-1snap.vbox");
        var bytes = File.ReadAllBytes(path);
        var state = VboxSnapshotSync.ReadDiskState(original, root, path);
        var disk2 = Guid.Parse("f113fdf8-9750-4557-a8be-87fd02319071");
        state = state with { Root = AddChild(state.Root, state.CurrentMediumId, new MediumInfo(disk2, dir.File("dup.vdi"), MediumFormats.Vdi, 0, Array.Empty<MediumInfo>())) };

        var e = Assert.Throws<DiskSnapshotEngine.Errors.DiskImageException>(() => VboxSnapshotSync.SyncFile(path, state));
        Assert.Equal(DiskSnapshotEngine.Errors.ErrorKind.InvalidArgument, e.Kind);
        Assert.Contains("belongs to another disk", e.Message);
        Assert.Equal(bytes, File.ReadAllBytes(path));
        Assert.False(File.Exists(path + AtomicXmlFile.BackupSuffix));
    }

    private static IEnumerable<XElement> Scopes(XElement machine, XNamespace ns) =>
        new[] { machine.Element(ns + "Hardware"), machine.Element(ns + "StorageControllers") }.OfType<XElement>();

    private static MediumInfo AddChild(MediumInfo m, Guid parent, MediumInfo child) =>
        m with { Children = (m.Id == parent ? m.Children.Append(child) : m.Children.Select(c => AddChild(c, parent, child))).ToList() };

    private static SnapshotInfo AddSnapshot(SnapshotInfo s, Guid parent, SnapshotInfo child) =>
        s with { Children = (s.Id == parent ? s.Children.Append(child) : s.Children.Select(c => AddSnapshot(c, parent, child))).ToList() };
}

/// <summary>A theory over the shared VirtualBox samples (skipped when ../shared/vbox is absent).</summary>
public sealed class RequiresVboxSchemaTheoryAttribute : TheoryAttribute
{
    public RequiresVboxSchemaTheoryAttribute()
    {
        if (SharedFixtures.SharedDirectory is null || !Directory.Exists(System.IO.Path.Combine(SharedFixtures.SharedDirectory, "vbox", "samples")))
            Skip = "../shared/vbox is not beside the checkout (set DSE_SHARED_DIR to point at shared/)";
    }
}

public class AtomicXmlFileTests
{
    [Fact]
    public void A_write_that_fails_midway_leaves_the_old_file_and_no_temporary_file()
    {
        using var dir = new TempDirectory("atomic");
        var path = dir.File("m.vbox");
        File.WriteAllText(path, "<VirtualBox xmlns=\"http://www.virtualbox.org/\" version=\"1.19-linux\"/>");
        var before = File.ReadAllBytes(path);
        // A control character cannot be written in XML 1.0: the writer fails after it has started the temporary file.
        var doc = new XDocument(new XElement("VirtualBox", new XAttribute("version", "1.19"), new XElement("a", new string('x', 100_000)), new XElement("b", "bad\u0001")));

        Assert.ThrowsAny<Exception>(() => AtomicXmlFile.Save(doc, path));

        Assert.Equal(before, File.ReadAllBytes(path));
        Assert.Equal(new[] { "m.vbox" }, Directory.GetFiles(dir.Path).Select(System.IO.Path.GetFileName));
    }

    [Fact]
    public void Replacing_keeps_the_previous_version_as_prev_and_a_new_machine_never_overwrites()
    {
        using var dir = new TempDirectory("atomic");
        var path = dir.File("m.vbox");
        AtomicXmlFile.Save(new XDocument(new XElement("one")), path, mustNotExist: true);
        var first = File.ReadAllBytes(path);
        AtomicXmlFile.Save(new XDocument(new XElement("two")), path);
        Assert.Equal(first, File.ReadAllBytes(path + AtomicXmlFile.BackupSuffix));
        Assert.Equal("two", XDocument.Load(path).Root!.Name.LocalName);
        var e = Assert.Throws<DiskSnapshotEngine.Errors.DiskImageException>(() => AtomicXmlFile.Save(new XDocument(new XElement("three")), path, mustNotExist: true));
        Assert.Equal(DiskSnapshotEngine.Errors.ErrorKind.AlreadyExists, e.Kind);
        Assert.Equal("two", XDocument.Load(path).Root!.Name.LocalName);
    }

    [Fact]
    public void Garbage_and_non_machine_files_are_typed_errors()
    {
        using var dir = new TempDirectory("atomic");
        var path = dir.File("bad.vbox");
        File.WriteAllText(path, "<VirtualBox><Machine");
        Assert.Equal(DiskSnapshotEngine.Errors.ErrorKind.InvalidFormat, Assert.Throws<DiskSnapshotEngine.Errors.DiskImageException>(() => AtomicXmlFile.Load(path)).Kind);
        File.WriteAllText(path, "<VirtualBox xmlns=\"http://www.virtualbox.org/\" version=\"1.19\"><Global/></VirtualBox>");
        var state = HypervisorTestData.ThreeDeepTwoSnapshotsAndBranch(dir.Path);
        var e = Assert.Throws<DiskSnapshotEngine.Errors.DiskImageException>(() => VboxSnapshotSync.SyncFile(path, state));
        Assert.Equal(DiskSnapshotEngine.Errors.ErrorKind.InvalidFormat, e.Kind);
        Assert.Contains("no Machine element", e.Message);
        Assert.Equal(DiskSnapshotEngine.Errors.ErrorKind.FileNotFound,
            Assert.Throws<DiskSnapshotEngine.Errors.DiskImageException>(() => AtomicXmlFile.Load(dir.File("none.vbox"))).Kind);
    }
}
