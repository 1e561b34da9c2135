using System.Xml.Linq;
using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.Hypervisors.Model;
using DiskSnapshotEngine.Hypervisors.VirtualBox;
using DiskSnapshotEngine.Tests.Infrastructure;
using static DiskSnapshotEngine.Tests.Hypervisors.HypervisorTestData;

namespace DiskSnapshotEngine.Tests.Hypervisors;

public class VirtualBoxMachineFileTests
{
    private static readonly XNamespace Vb = "http://www.virtualbox.org/";
    private static readonly DateTimeOffset Now = new(2026, 11, 21, 12, 0, 0, TimeSpan.Zero);

    [RequiresVboxSchemaFact]
    public void Machine_file_for_a_real_raw_disk_validates_against_the_VirtualBox_schema()
    {
        using var dir = new TempDirectory("vbox");
        var disk = dir.File("disk.img");
        using (DiskImage.Create(disk, new ImageCreateOptions(16L << 20))) { }
        VmDiskState state;
        using (var chain = DiskImage.Open(disk)) state = VmDiskStateBuilder.FromChain(chain);

        var registration = new VirtualBoxRegistrar(new FakeCommandRunner(Array.Empty<string>()))
            .Register(new VboxMachineSpec("Zoë's raw vm", MemoryMiB: 512, Cpus: 2), state, dir.Path, dryRun: false, Now);

        AssertValidatesAgainstVirtualBoxSchema(registration.VboxPath);
        var doc = XDocument.Load(registration.VboxPath);
        var hd = Assert.Single(doc.Descendants(Vb + "HardDisk"));
        Assert.Equal("RAW", (string?)hd.Attribute("format"));
        Assert.Equal(disk, (string?)hd.Attribute("location"));
        Assert.Equal("Normal", (string?)hd.Attribute("type"));
        Assert.Equal((string?)hd.Attribute("uuid"), (string?)doc.Descendants(Vb + "Image").Single().Attribute("uuid"));
        Assert.Equal("512", (string?)doc.Descendants(Vb + "Memory").Single().Attribute("RAMSize"));
        Assert.Equal("2", (string?)doc.Descendants(Vb + "CPU").Single().Attribute("count"));
    }

    [RequiresVboxSchemaFact]
    public void Three_deep_chain_with_two_snapshots_and_a_branch_validates_and_nests_as_VirtualBox_does()
    {
        using var dir = new TempDirectory("vbox");
        var state = ThreeDeepTwoSnapshotsAndBranch(dir.Path);
        var doc = VboxMachineWriter.Create(new VboxMachineSpec("branchy"), state, Now);
        var file = dir.File("branchy.vbox");
        AtomicXmlFile.Save(doc, file, mustNotExist: true);

        AssertValidatesAgainstVirtualBoxSchema(file);
        var machine = XDocument.Load(file).Root!.Element(Vb + "Machine")!;
        var baseEl = machine.Element(Vb + "MediaRegistry")!.Element(Vb + "HardDisks")!.Elements(Vb + "HardDisk").Single();
        Assert.Equal("{" + Base + "}", (string?)baseEl.Attribute("uuid"));
        Assert.Equal(new[] { "{" + D1 + "}", "{" + D3 + "}" }, baseEl.Elements(Vb + "HardDisk").Select(e => (string?)e.Attribute("uuid")));
        var d1 = baseEl.Elements(Vb + "HardDisk").First();
        Assert.Equal("{" + D2 + "}", (string?)d1.Elements(Vb + "HardDisk").Single().Attribute("uuid"));
        Assert.All(baseEl.Descendants(Vb + "HardDisk"), e => Assert.Null(e.Attribute("type")));

        Assert.Equal("{" + S1 + "}", (string?)machine.Attribute("currentSnapshot"));
        var s1 = machine.Element(Vb + "Snapshot")!;
        Assert.Equal("clean", (string?)s1.Attribute("name"));
        Assert.Equal("2026-11-19T07:30:00Z", (string?)s1.Attribute("timeStamp")); // +02:00 converted to the Z form the schema requires
        Assert.Equal("{" + Base + "}", (string?)s1.Element(Vb + "Hardware")!.Descendants(Vb + "Image").Single().Attribute("uuid"));
        var s2 = s1.Element(Vb + "Snapshots")!.Elements(Vb + "Snapshot").Single();
        Assert.Equal("second & <last>", s2.Element(Vb + "Description")!.Value);
        Assert.Equal("{" + D1 + "}", (string?)s2.Descendants(Vb + "Image").Single().Attribute("uuid"));
        Assert.Equal("{" + D3 + "}", (string?)machine.Element(Vb + "Hardware")!.Descendants(Vb + "Image").Single().Attribute("uuid"));
    }

    [Fact]
    public void Differencing_VHDX_is_refused_because_VirtualBox_cannot_open_VHDX_children()
    {
        var child = new MediumInfo(Guid.NewGuid(), "/d/child.vhdx", MediumFormats.Vhdx, 1 << 20, Array.Empty<MediumInfo>());
        var root = new MediumInfo(Guid.NewGuid(), "/d/base.vhdx", MediumFormats.Vhdx, 1 << 20, new[] { child });
        var e = Assert.Throws<DiskImageException>(() =>
            VboxMachineWriter.Create(new VboxMachineSpec("x"), new VmDiskState(root, child.Id, Array.Empty<SnapshotInfo>(), null), Now));
        Assert.Equal(ErrorKind.Unsupported, e.Kind);
        Assert.Contains("dse clone", e.Message);
    }

    [Fact]
    public void A_snapshot_naming_an_image_outside_the_tree_is_refused_before_anything_is_written()
    {
        using var dir = new TempDirectory("vbox");
        var good = ThreeDeepTwoSnapshotsAndBranch(dir.Path);
        var bad = good with { Snapshots = new[] { good.Snapshots[0] with { AttachedMediumId = Guid.NewGuid() } } };
        var runner = new FakeCommandRunner(new[] { "VBoxManage" });
        var e = Assert.Throws<DiskImageException>(() =>
            new VirtualBoxRegistrar(runner).Register(new VboxMachineSpec("bad"), bad, dir.Path, dryRun: false, Now));
        Assert.Equal(ErrorKind.InvalidArgument, e.Kind);
        Assert.False(Directory.Exists(System.IO.Path.Combine(dir.Path, "bad")));
        Assert.Empty(runner.Ran);
    }

    [Fact]
    public void Dry_run_prints_the_VBoxManage_commands_and_writes_nothing()
    {
        using var dir = new TempDirectory("vbox");
        var state = ThreeDeepTwoSnapshotsAndBranch(dir.Path);
        var spec = new VboxMachineSpec("dry vm", "Ubuntu_64", 2048, 4) { MachineId = Guid.Parse("11111111-2222-4333-8444-555555555555") };
        var r = new VirtualBoxRegistrar(new FakeCommandRunner(new[] { "VBoxManage" })).Register(spec, state, dir.Path, dryRun: true, Now);

        Assert.False(r.Registered);
        Assert.Empty(Directory.EnumerateFileSystemEntries(dir.Path));
        var lines = r.Commands.Select(c => c.ToString()).ToList();
        Assert.Equal($"VBoxManage createvm --name 'dry vm' --ostype Ubuntu_64 --basefolder {dir.Path} --uuid 11111111-2222-4333-8444-555555555555 --register", lines[0]);
        Assert.Equal("VBoxManage modifyvm 'dry vm' --memory 2048 --cpus 4", lines[1]);
        Assert.StartsWith("VBoxManage storagectl 'dry vm' --name SATA --add sata", lines[2]);
        // Base first, then the current image (D3 hangs directly under the base): each attach registers its image.
        Assert.Equal(2, lines.Count(l => l.Contains("storageattach", StringComparison.Ordinal)));
        Assert.EndsWith($"--medium '{dir.Path}/base disk.vdi'", lines[3]);
        Assert.EndsWith($"--medium '{dir.Path}/Snapshots/{{d3}} it'\\''s.vdi'", lines[4]);
        Assert.Equal(new[] { "--medium", System.IO.Path.Combine(dir.Path, "Snapshots/{d3} it's.vdi") }, r.Commands[4].Arguments.TakeLast(2));
    }

    [Fact]
    public void Without_VBoxManage_the_file_is_written_and_the_one_command_to_run_is_given()
    {
        using var dir = new TempDirectory("vbox");
        var state = ThreeDeepTwoSnapshotsAndBranch(dir.Path);
        var runner = new FakeCommandRunner(Array.Empty<string>());
        var r = new VirtualBoxRegistrar(runner).Register(new VboxMachineSpec("nobox"), state, dir.Path, dryRun: false, Now);
        Assert.False(r.Registered);
        Assert.True(File.Exists(r.VboxPath));
        Assert.Contains($"VBoxManage registervm {r.VboxPath}", r.Notice);
        Assert.Empty(runner.Ran);
    }

    // VBoxManage cannot run here: the fake stands in for it, answering registervm with success or failure.
    [Fact]
    public void Registervm_success_and_failure_with_a_fake_VBoxManage_roll_back_the_file_on_failure()
    {
        using var dir = new TempDirectory("vbox");
        var state = ThreeDeepTwoSnapshotsAndBranch(dir.Path);
        var ok = new FakeCommandRunner(new[] { "VBoxManage" });
        var r = new VirtualBoxRegistrar(ok).Register(new VboxMachineSpec("good"), state, dir.Path, dryRun: false, Now);
        Assert.True(r.Registered);
        Assert.Equal(new[] { "registervm", r.VboxPath }, Assert.Single(ok.Ran).Arguments);

        var failing = new FakeCommandRunner(new[] { "VBoxManage" },
            _ => new CommandResultBuilder(1, "", "VBoxManage: error: Machine settings file 'x' is already registered").Build());
        var e = Assert.Throws<DiskImageException>(() =>
            new VirtualBoxRegistrar(failing).Register(new VboxMachineSpec("bad"), state, dir.Path, dryRun: false, Now));
        Assert.Equal(ErrorKind.ExternalTool, e.Kind);
        Assert.Contains("already registered", e.Message);
        Assert.Contains("nothing is registered", e.Message);
        Assert.False(Directory.Exists(System.IO.Path.Combine(dir.Path, "bad")));

        var again = Assert.Throws<DiskImageException>(() =>
            new VirtualBoxRegistrar(ok).Register(new VboxMachineSpec("good"), state, dir.Path, dryRun: false, Now));
        Assert.Equal(ErrorKind.AlreadyExists, again.Kind);
    }

    private readonly record struct CommandResultBuilder(int Code, string Out, string Err)
    {
        public DiskSnapshotEngine.Hypervisors.Processes.CommandResult Build() => new(Code, Out, Err);
    }
}
