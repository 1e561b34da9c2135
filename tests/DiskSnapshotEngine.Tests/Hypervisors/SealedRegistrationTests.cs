using System.Xml.Linq;
using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.Hypervisors.HyperV;
using DiskSnapshotEngine.Hypervisors.Libvirt;
using DiskSnapshotEngine.Hypervisors.Model;
using DiskSnapshotEngine.Hypervisors.VirtualBox;
using DiskSnapshotEngine.Tests.Infrastructure;
using static DiskSnapshotEngine.Tests.Hypervisors.HypervisorTestData;

namespace DiskSnapshotEngine.Tests.Hypervisors;

/// <summary>
/// A golden (sealed) image is registered so that no hypervisor writes it: VirtualBox MultiAttach (checked against the
/// real schema), the read-only attribute in the Hyper-V script, libvirt's &lt;readonly/&gt; (checked with the real virsh).
/// </summary>
public class SealedRegistrationTests
{
    private static readonly XNamespace Vb = "http://www.virtualbox.org/";
    private static readonly DateTimeOffset Now = new(2026, 11, 21, 12, 0, 0, TimeSpan.Zero);

    private static VmDiskState RealChain(TempDirectory dir, string ext)
    {
        string golden = dir.File("golden." + ext), clone = dir.File("vm." + ext);
        DiskImage.Create(golden, new ImageCreateOptions(8L << 20)).Dispose();
        DiskImage.CreateDifferencing(clone, golden).Dispose(); // seals the golden image
        using var chain = DiskImage.Open(clone);
        return VmDiskStateBuilder.FromChain(chain);
    }

    [RequiresVboxSchemaFact]
    public void A_golden_base_is_MultiAttach_in_the_machine_file_and_the_file_validates()
    {
        using var dir = new TempDirectory("vbox-sealed");
        var state = RealChain(dir, "vdi");
        Assert.True(state.Root.IsGolden);
        var registration = new VirtualBoxRegistrar(new FakeCommandRunner(Array.Empty<string>()))
            .Register(new VboxMachineSpec("golden vm"), state, dir.Path, dryRun: false, Now);
        AssertValidatesAgainstVirtualBoxSchema(registration.VboxPath);
        var baseDisk = XDocument.Load(registration.VboxPath).Descendants(Vb + "HardDisks").Single().Elements(Vb + "HardDisk").Single();
        Assert.Equal("MultiAttach", (string?)baseDisk.Attribute("type"));
        Assert.Equal(dir.File("golden.vdi"), (string?)baseDisk.Attribute("location"));
        Assert.Null(baseDisk.Element(Vb + "HardDisk")!.Attribute("type")); // the schema allows a type on base disks only
    }

    [Fact]
    public void The_dry_run_makes_the_golden_base_multiattach_and_attaches_only_the_clone()
    {
        using var dir = new TempDirectory("vbox-sealed-dry");
        var state = RealChain(dir, "vdi");
        var r = new VirtualBoxRegistrar(new FakeCommandRunner(new[] { "VBoxManage" })).Register(new VboxMachineSpec("dry"), state, dir.Path, dryRun: true, Now);
        var lines = r.Commands.Select(c => string.Join(' ', c.Arguments)).ToList();
        int modify = lines.FindIndex(l => l.StartsWith("modifymedium disk " + dir.File("golden.vdi") + " --type multiattach", StringComparison.Ordinal));
        Assert.True(modify >= 0, string.Join("\n", lines));
        var attached = lines.Where(l => l.StartsWith("storageattach", StringComparison.Ordinal)).ToList();
        Assert.Equal(dir.File("vm.vdi"), Assert.Single(attached).Split(' ').Last());
        Assert.True(modify < lines.IndexOf(attached[0]));
    }

    [Fact]
    public void Hyper_V_marks_golden_parents_read_only_and_refuses_a_golden_disk_itself()
    {
        using var dir = new TempDirectory("hyperv-sealed");
        var state = RealChain(dir, "vhdx");
        var script = HyperVScript.Register(new HyperVVmSpec("vm"), state);
        int readOnly = script.IndexOf($"Set-ItemProperty -LiteralPath '{dir.File("golden.vhdx")}' -Name IsReadOnly -Value $true", StringComparison.Ordinal);
        Assert.True(readOnly >= 0, script);
        Assert.True(readOnly < script.IndexOf("New-VM", StringComparison.Ordinal));
        Assert.DoesNotContain($"'{dir.File("vm.vhdx")}' -Name IsReadOnly", script);

        var goldenOnly = new VmDiskState(state.Root with { Children = Array.Empty<MediumInfo>() }, state.Root.Id, Array.Empty<SnapshotInfo>(), null);
        var e = Assert.Throws<DiskImageException>(() => HyperVScript.Register(new HyperVVmSpec("vm"), goldenOnly));
        Assert.Equal(ErrorKind.Unsupported, e.Kind);
        Assert.Contains("dse clone --linked", e.Message);
    }

    [RequiresToolFact("virsh")]
    public void Libvirt_attaches_a_golden_disk_readonly_and_virsh_keeps_it()
    {
        using var dir = new TempDirectory("libvirt-sealed");
        string golden = dir.File("golden.vdi");
        DiskImage.Create(golden, new ImageCreateOptions(8L << 20)).Dispose();
        DiskImage.Seal(golden);
        VmDiskState state;
        using (var chain = DiskImage.Open(golden)) state = VmDiskStateBuilder.FromChain(chain);
        var spec = new LibvirtDomainSpec("golden-vm");
        var xmlFile = dir.File("domain.xml");
        LibvirtDomainXml.Build(spec, state).Save(xmlFile);
        var output = ExternalTool.RunChecked("virsh", "-c", "test:///default", $"define {xmlFile}; dumpxml {spec.Uuid:D}");
        var disk = XDocument.Parse(output[output.IndexOf("<domain", StringComparison.Ordinal)..]).Descendants("disk").Single();
        Assert.NotNull(disk.Element("readonly"));

        DiskImage.Unseal(golden);
        using (var chain = DiskImage.Open(golden)) state = VmDiskStateBuilder.FromChain(chain);
        Assert.Null(LibvirtDomainXml.Build(spec, state).Descendants("disk").Single().Element("readonly"));
    }
}
