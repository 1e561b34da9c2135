using System.Xml.Linq;
using DiskSnapshotEngine.Cli;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Hypervisors.Model;
using DiskSnapshotEngine.Hypervisors.Processes;
using DiskSnapshotEngine.Hypervisors.VirtualBox;
using DiskSnapshotEngine.Snapshots;
using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;
using DiskSnapshotEngine.Tests.Operations;
using static DiskSnapshotEngine.Tests.Hypervisors.HypervisorTestData;

namespace DiskSnapshotEngine.Tests.Hypervisors;

/// <summary>
/// Snapshots taken with <c>dse snapshot</c> on a real VDI disk, registered as a VirtualBox machine and kept in step with
/// <c>--vm</c>; every written file is checked with xmllint against the real VirtualBox schema.
/// </summary>
public class SnapshotCatalogVirtualBoxTests
{
    private const long Size = 6L << 20;
    private static readonly XNamespace Vb = "http://www.virtualbox.org/";
    private static readonly DateTimeOffset Now = new(2026, 11, 21, 12, 0, 0, TimeSpan.Zero);

    private static string U(Guid id) => "{" + id + "}";

    private static Guid IdOf(string image)
    {
        using var layer = DiskImage.OpenLayer(image, false);
        return layer.Identity.Id;
    }

    private static async Task Dse(params string[] args)
    {
        var r = await CliRunner.RunAsync(args);
        Assert.True(r.ExitCode == 0, $"dse {string.Join(' ', args)}: {r}");
    }

    /// <summary>
    /// base.vdi ← vm.vdi (a linked clone, so the tree has a base outside the catalog); then with dse: snapshot s1,
    /// write, snapshot s2, write, revert to s1, write. Images: base → s1 layer → { s2 layer, vm.vdi }.
    /// </summary>
    private static async Task<string> BranchedDisk(TempDirectory dir)
    {
        var rng = new Random(5);
        var model = new byte[Size];
        string baseImage = dir.File("base.vdi");
        string disk = dir.File("vm disk.vdi");
        OpsKit.CreateBase(baseImage, Size);
        OpsKit.RandomWrites(baseImage, rng, 4, model);
        OpsKit.CreateChild(disk, baseImage);
        OpsKit.RandomWrites(disk, rng, 4, model);
        await Dse("snapshot", "create", disk, "--name", "s1", "--description", "clean install");
        OpsKit.RandomWrites(disk, rng, 4, model);
        await Dse("snapshot", "create", disk, "--name", "s2", "--description", "second & <last>");
        OpsKit.RandomWrites(disk, rng, 4, model);
        await Dse("snapshot", "revert", disk, "--name", "s1");
        OpsKit.RandomWrites(disk, rng, 4, model);
        return disk;
    }

    /// <summary>Writes the machine file the way <c>dse vm register virtualbox</c> does on a machine without VBoxManage.</summary>
    private static async Task<string> Register(TempDirectory dir, string disk)
    {
        var vbox = System.IO.Path.Combine(dir.Path, "vms", "snapvm", "snapvm.vbox");
        if (ProcessCommandRunner.FindOnPath("VBoxManage") is null)
        {
            var r = await CliRunner.RunAsync("vm", "register", "virtualbox", "--name", "snapvm", "--disk", disk, "--folder", dir.File("vms"));
            Assert.True(r.ExitCode == 0, r.ToString());
            Assert.Contains($"wrote {vbox}", r.StdOut);
            Assert.Contains("VBoxManage is not on the PATH", r.StdErr);
        }
        else
        {
            // Never register a real VM on a developer's machine: the same state through the registrar with VBoxManage absent.
            var r = new VirtualBoxRegistrar(new FakeCommandRunner(Array.Empty<string>()))
                .Register(new VboxMachineSpec("snapvm"), SnapshotCatalogState.ForDisk(disk), dir.File("vms"), dryRun: false, Now);
            Assert.Equal(vbox, r.VboxPath);
            Assert.Contains("VBoxManage is not on the PATH", r.Notice);
        }
        return vbox;
    }

    private static XElement Machine(string vbox) => XDocument.Load(vbox).Root!.Element(Vb + "Machine")!;

    private static XElement Child(XElement hardDisk, Guid id) =>
        Assert.Single(hardDisk.Elements(Vb + "HardDisk"), e => (string?)e.Attribute("uuid") == U(id));

    private static string AttachedIn(XElement scope) => (string)scope.Element(Vb + "Hardware")!.Descendants(Vb + "Image").Single().Attribute("uuid")!;

    [RequiresVboxSchemaFact]
    public async Task Registering_a_disk_with_dse_snapshots_writes_every_image_and_the_snapshot_tree()
    {
        using var dir = new TempDirectory("catvbox");
        string disk = await BranchedDisk(dir);
        var catalog = DiskSnapshots.Catalog(disk);
        var s1 = catalog.Snapshots.Single(s => s.Name == "s1");
        var s2 = catalog.Snapshots.Single(s => s.Name == "s2");
        string s1Layer = DiskSnapshots.PathOf(disk, s1), s2Layer = DiskSnapshots.PathOf(disk, s2);
        Guid baseId = IdOf(dir.File("base.vdi")), s1Id = IdOf(s1Layer), s2Id = IdOf(s2Layer), diskId = IdOf(disk);
        Assert.Equal(4, new[] { baseId, s1Id, s2Id, diskId }.Distinct().Count());

        string vbox = await Register(dir, disk);
        AssertValidatesAgainstVirtualBoxSchema(vbox);

        var machine = Machine(vbox);
        // Media: base → s1's layer → { s2's layer, the current state }, each with the image's own id and path.
        var top = machine.Element(Vb + "MediaRegistry")!.Element(Vb + "HardDisks")!.Elements(Vb + "HardDisk").Single();
        Assert.Equal(U(baseId), (string?)top.Attribute("uuid"));
        Assert.Equal(dir.File("base.vdi"), (string?)top.Attribute("location"));
        Assert.Equal("Normal", (string?)top.Attribute("type"));
        var s1El = Child(top, s1Id);
        Assert.Equal(s1Layer, (string?)s1El.Attribute("location"));
        Assert.Equal(new[] { U(s2Id), U(diskId) }, s1El.Elements(Vb + "HardDisk").Select(e => (string?)e.Attribute("uuid")));
        Assert.Equal(s2Layer, (string?)Child(s1El, s2Id).Attribute("location"));
        Assert.Equal(disk, (string?)Child(s1El, diskId).Attribute("location"));
        Assert.Equal(4, machine.Descendants(Vb + "HardDisk").Count());
        Assert.All(machine.Descendants(Vb + "HardDisk"), e => Assert.Equal("VDI", (string?)e.Attribute("format")));

        // Snapshots: s1 (attaches its frozen layer) → s2 (its own layer); current snapshot s1; the VM runs on vm disk.vdi.
        Assert.Equal(U(s1.Id), (string?)machine.Attribute("currentSnapshot"));
        var snap1 = machine.Element(Vb + "Snapshot")!;
        Assert.Equal(U(s1.Id), (string?)snap1.Attribute("uuid"));
        Assert.Equal("s1", (string?)snap1.Attribute("name"));
        Assert.Equal("clean install", snap1.Element(Vb + "Description")!.Value);
        Assert.Equal(U(s1Id), AttachedIn(snap1));
        var snap2 = snap1.Element(Vb + "Snapshots")!.Elements(Vb + "Snapshot").Single();
        Assert.Equal(U(s2.Id), (string?)snap2.Attribute("uuid"));
        Assert.Equal("s2", (string?)snap2.Attribute("name"));
        Assert.Equal("second & <last>", snap2.Element(Vb + "Description")!.Value);
        Assert.Equal(U(s2Id), AttachedIn(snap2));
        Assert.Null(snap2.Element(Vb + "Snapshots"));
        Assert.Equal(U(diskId), AttachedIn(machine));

        // Read back through the sync's own reader: the same tree as the catalog gives.
        var reread = VboxSnapshotSync.ReadDiskState(XDocument.Load(vbox), baseId, vbox);
        var expected = SnapshotCatalogState.ForDisk(disk);
        Assert.Equal(expected.AllMedia.Select(m => (m.Id, m.Path)), reread.AllMedia.Select(m => (m.Id, m.Path)));
        Assert.Equal(expected.AllSnapshots.Select(s => (s.Id, s.Name, s.AttachedMediumId)), reread.AllSnapshots.Select(s => (s.Id, s.Name, s.AttachedMediumId)));
    }

    [RequiresVboxSchemaFact]
    public async Task Snapshot_create_with_vm_adds_the_snapshot_to_the_machine_file_which_still_validates()
    {
        using var dir = new TempDirectory("catvbox");
        string disk = await BranchedDisk(dir);
        string vbox = await Register(dir, disk);
        Guid oldCurrent = IdOf(disk);
        var before = File.ReadAllBytes(vbox);

        var r = await CliRunner.RunAsync("snapshot", "create", disk, "--name", "s3", "--description", "after the branch", "--vm", vbox);
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains($"updated {vbox}", r.StdOut);
        AssertValidatesAgainstVirtualBoxSchema(vbox);
        Assert.Equal(before, File.ReadAllBytes(vbox + AtomicXmlFile.BackupSuffix));

        var catalog = DiskSnapshots.Catalog(disk);
        var s1 = catalog.Snapshots.Single(s => s.Name == "s1");
        var s3 = catalog.Snapshots.Single(s => s.Name == "s3");
        Guid newCurrent = IdOf(disk);
        // The disk's file became s3's layer (same image, same id); a new empty current state hangs under it.
        Assert.Equal(oldCurrent, IdOf(DiskSnapshots.PathOf(disk, s3)));

        var machine = Machine(vbox);
        Assert.Equal(U(s3.Id), (string?)machine.Attribute("currentSnapshot"));
        var s3Medium = Assert.Single(machine.Descendants(Vb + "HardDisk"), e => (string?)e.Attribute("uuid") == U(oldCurrent));
        Assert.Equal(DiskSnapshots.PathOf(disk, s3), (string?)s3Medium.Attribute("location"));
        Assert.Equal(U(IdOf(DiskSnapshots.PathOf(disk, s1))), (string?)s3Medium.Parent!.Attribute("uuid"));
        Assert.Equal(disk, (string?)Child(s3Medium, newCurrent).Attribute("location"));
        Assert.Equal(5, machine.Descendants(Vb + "HardDisk").Count());

        // s3 was taken while s1 was current: it is s1's second child, after s2, and attaches its frozen layer.
        var snap1 = machine.Element(Vb + "Snapshot")!;
        var children = snap1.Element(Vb + "Snapshots")!.Elements(Vb + "Snapshot").ToList();
        Assert.Equal(new[] { "s2", "s3" }, children.Select(c => (string?)c.Attribute("name")));
        Assert.Equal(U(s3.Id), (string?)children[1].Attribute("uuid"));
        Assert.Equal("after the branch", children[1].Element(Vb + "Description")!.Value);
        Assert.Equal(U(oldCurrent), AttachedIn(children[1]));
        Assert.Equal(U(newCurrent), AttachedIn(machine));

        // Then revert, delete and rollback keep it in step too, and it validates after each.
        await Dse("snapshot", "revert", disk, "--name", "s2", "--vm", vbox);
        AssertValidatesAgainstVirtualBoxSchema(vbox);
        Assert.Equal(U(catalog.Snapshots.Single(s => s.Name == "s2").Id), (string?)Machine(vbox).Attribute("currentSnapshot"));
        Assert.Equal(U(IdOf(disk)), AttachedIn(Machine(vbox)));

        await Dse("snapshot", "delete", disk, "--name", "s3", "--vm", vbox);
        AssertValidatesAgainstVirtualBoxSchema(vbox);
        Assert.DoesNotContain(Machine(vbox).Descendants(Vb + "Snapshot"), e => (string?)e.Attribute("name") == "s3");
        Assert.DoesNotContain(Machine(vbox).Descendants(Vb + "HardDisk"), e => (string?)e.Attribute("uuid") == U(oldCurrent));

        await Dse("rollback", disk, "--vm", vbox);
        AssertValidatesAgainstVirtualBoxSchema(vbox);
        var state = SnapshotCatalogState.ForDisk(disk);
        var reread = VboxSnapshotSync.ReadDiskState(XDocument.Load(vbox), state.Root.Id, vbox);
        Assert.Equal(state.AllMedia.Select(m => m.Id), reread.AllMedia.Select(m => m.Id));
        Assert.Equal(state.CurrentMediumId, reread.CurrentMediumId);
        Assert.Equal(state.CurrentSnapshotId, reread.CurrentSnapshotId);
    }

    [RequiresVboxSchemaFact]
    public async Task A_failed_vbox_update_says_the_snapshot_was_taken_and_the_file_was_not_updated()
    {
        using var dir = new TempDirectory("catvbox");
        string disk = await BranchedDisk(dir);
        string vbox = await Register(dir, disk);
        var before = File.ReadAllBytes(vbox);
        // The backup copy cannot be written over a folder: the checks before the snapshot pass, the save after it fails.
        Directory.CreateDirectory(vbox + AtomicXmlFile.BackupSuffix);

        var r = await CliRunner.RunAsync("snapshot", "create", disk, "--name", "s3", "--vm", vbox);
        Assert.Equal(ExitCodes.VmFileNotUpdated, r.ExitCode);
        Assert.Contains("the disk operation succeeded", r.StdErr);
        Assert.Contains($"{vbox} was NOT updated", r.StdErr);
        Assert.Contains("dse vm sync virtualbox", r.StdErr);
        Assert.Contains("snapshot 's3' created", r.StdOut);
        Assert.Contains(DiskSnapshots.Catalog(disk).Snapshots, s => s.Name == "s3");
        Assert.Equal(before, File.ReadAllBytes(vbox));

        // Once the cause is gone, vm sync brings the file in step.
        Directory.Delete(vbox + AtomicXmlFile.BackupSuffix);
        await Dse("vm", "sync", "virtualbox", "--vm", vbox, "--disk", disk);
        AssertValidatesAgainstVirtualBoxSchema(vbox);
        Assert.Contains(Machine(vbox).Descendants(Vb + "Snapshot"), e => (string?)e.Attribute("name") == "s3");
    }

    [RequiresVboxSchemaFact]
    public async Task A_wrong_vm_file_or_a_VHDX_disk_is_refused_before_the_disk_changes()
    {
        using var dir = new TempDirectory("catvbox");
        string disk = await BranchedDisk(dir);
        string vbox = await Register(dir, disk);
        string other = dir.File("other.vdi");
        OpsKit.CreateBase(other, Size);

        var wrong = await CliRunner.RunAsync("snapshot", "create", other, "--name", "x", "--vm", vbox);
        Assert.Equal(ExitCodes.ForKind(ErrorKind.InvalidArgument), wrong.ExitCode);
        Assert.Contains("registers no image", wrong.StdErr);
        Assert.Contains("nothing was changed", wrong.StdErr);
        Assert.Empty(DiskSnapshots.Catalog(other).Snapshots);

        string vhdx = dir.File("hv.vhdx");
        OpsKit.CreateBase(vhdx, Size);
        var hv = new VirtualBoxRegistrar(new FakeCommandRunner(Array.Empty<string>()))
            .Register(new VboxMachineSpec("hv"), SnapshotCatalogState.ForDisk(vhdx), dir.File("vms"), dryRun: false, Now);
        var refused = await CliRunner.RunAsync("snapshot", "create", vhdx, "--name", "x", "--vm", hv.VboxPath);
        Assert.Equal(ExitCodes.ForKind(ErrorKind.Unsupported), refused.ExitCode);
        Assert.Contains("nothing was changed", refused.StdErr);
        Assert.Empty(DiskSnapshots.Catalog(vhdx).Snapshots);
    }

    [RequiresVboxSchemaFact]
    public async Task Rerunning_an_interrupted_delete_with_vm_finishes_it_and_updates_the_file()
    {
        using var dir = new TempDirectory("catvbox");
        string disk = await BranchedDisk(dir);
        string vbox = await Register(dir, disk);
        // Interrupted right after the plan was recorded: s2's layer has no children, so the plan is to remove it.
        var catalog = DiskSnapshots.Catalog(disk);
        var s2 = catalog.Snapshots.Single(s => s.Name == "s2");
        (catalog with { Pending = new PendingSnapshotOperation { Operation = "delete", Snapshot = s2, Plan = "remove" } }).Save(disk);
        Assert.Throws<DiskImageException>(() => SnapshotCatalogState.ForDisk(disk));

        await Dse("snapshot", "delete", disk, "--name", "s2", "--vm", vbox);
        AssertValidatesAgainstVirtualBoxSchema(vbox);
        Assert.False(File.Exists(DiskSnapshots.PathOf(disk, s2)));
        Assert.DoesNotContain(Machine(vbox).Descendants(Vb + "Snapshot"), e => (string?)e.Attribute("name") == "s2");
        Assert.Equal(3, Machine(vbox).Descendants(Vb + "HardDisk").Count());
    }

    [Fact]
    public void A_disk_without_snapshots_gives_its_chain_and_an_unfinished_operation_is_refused()
    {
        using var dir = new TempDirectory("catvbox");
        string disk = dir.File("plain.vdi");
        OpsKit.CreateBase(disk, Size);
        var state = SnapshotCatalogState.ForDisk(disk);
        Assert.Equal(IdOf(disk), state.Root.Id);
        Assert.Equal(state.Root.Id, state.CurrentMediumId);
        Assert.Empty(state.Snapshots);

        var entry = new SnapshotEntry { Id = Guid.NewGuid(), Name = "half", Created = Now, File = "x.vdi" };
        (DiskSnapshots.Catalog(disk) with { Pending = new PendingSnapshotOperation { Operation = "create", Snapshot = entry } }).Save(disk);
        var e = Assert.Throws<DiskImageException>(() => SnapshotCatalogState.ForDisk(disk));
        Assert.Equal(ErrorKind.InvalidArgument, e.Kind);
        Assert.Contains("interrupted snapshot create of 'half'", e.Message);
    }
}
