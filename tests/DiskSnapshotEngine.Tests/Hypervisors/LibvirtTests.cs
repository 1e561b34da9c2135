using System.Xml.Linq;
using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.Hypervisors.Libvirt;
using DiskSnapshotEngine.Hypervisors.Model;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Hypervisors;

/// <summary>The real virsh against libvirt's test driver (test:///default needs no daemon; its state lives for one virsh run).</summary>
public class LibvirtTests
{
    /// <summary>Defines the domain and dumps it back in ONE virsh run (the test driver forgets everything between runs).</summary>
    private static XDocument DefineAndDump(string xmlFile, Guid uuid)
    {
        // One argument holding virsh's own command list; the XML path is a plain temp path without blanks or quotes.
        Assert.DoesNotContain(' ', xmlFile);
        var output = ExternalTool.RunChecked("virsh", "-c", "test:///default", $"define {xmlFile}; dumpxml {uuid:D}");
        return XDocument.Parse(output[output.IndexOf("<domain", StringComparison.Ordinal)..]);
    }

    private static VmDiskState Single(string path, string format)
    {
        var m = new MediumInfo(Guid.NewGuid(), path, format, 1L << 30, Array.Empty<MediumInfo>());
        return new VmDiskState(m, m.Id, Array.Empty<SnapshotInfo>(), null);
    }

    [RequiresToolFact("virsh")]
    public void Virsh_defines_a_real_raw_disk_and_dumpxml_shows_its_path_and_format()
    {
        using var dir = new TempDirectory("libvirt");
        var folder = System.IO.Path.Combine(dir.Path, "Zoë's disks");
        Directory.CreateDirectory(folder);
        var disk = System.IO.Path.Combine(folder, "boot disk.img");
        using (DiskImage.Create(disk, new ImageCreateOptions(8L << 20))) { }
        VmDiskState state;
        using (var chain = DiskImage.Open(disk)) state = VmDiskStateBuilder.FromChain(chain);
        var spec = new LibvirtDomainSpec("dse raw 'vm'", 512, 2);

        var xmlFile = dir.File("domain.xml");
        LibvirtDomainXml.Build(spec, state).Save(xmlFile);
        var dumped = DefineAndDump(xmlFile, spec.Uuid);

        Assert.Equal("dse raw 'vm'", dumped.Root!.Element("name")!.Value);
        var d = dumped.Descendants("disk").Single();
        Assert.Equal(disk, (string?)d.Element("source")!.Attribute("file"));
        Assert.Equal("raw", (string?)d.Element("driver")!.Attribute("type"));
        Assert.Equal("524288", dumped.Root.Element("memory")!.Value); // libvirt reports KiB
    }

    [RequiresToolFact("virsh")]
    public void Virsh_accepts_a_VDI_with_the_vdi_driver_type()
    {
        using var dir = new TempDirectory("libvirt");
        var spec = new LibvirtDomainSpec("vdi-vm");
        var xmlFile = dir.File("domain.xml");
        LibvirtDomainXml.Build(spec, Single("/srv/vms/base disk.vdi", MediumFormats.Vdi)).Save(xmlFile);
        var d = DefineAndDump(xmlFile, spec.Uuid).Descendants("disk").Single();
        Assert.Equal("vdi", (string?)d.Element("driver")!.Attribute("type"));
        Assert.Equal("/srv/vms/base disk.vdi", (string?)d.Element("source")!.Attribute("file"));
    }

    [RequiresToolFact("virsh")]
    public void VHDX_is_defined_with_the_vhdx_driver_type_or_refused_clearly_by_a_libvirt_that_does_not_know_it()
    {
        var state = Single("/srv/vms/disk.vhdx", MediumFormats.Vhdx);
        Assert.Equal("vhdx", (string?)LibvirtDomainXml.Build(new LibvirtDomainSpec("v"), state).Descendants("driver").Single().Attribute("type"));
        try
        {
            var r = new LibvirtRegistrar().Register(new LibvirtDomainSpec("vhdx-vm"), state, "test:///default", dryRun: false);
            Assert.True(r.Defined); // a libvirt that knows vhdx (newer than the 9.0 installed here)
        }
        catch (DiskImageException e)
        {
            // libvirt 9.0's storage format list has vdi and vhd but not vhdx: the error must say so, with a way out.
            Assert.Equal(ErrorKind.Unsupported, e.Kind);
            Assert.Contains("unknown driver format value 'vhdx'", e.Message);
            Assert.Contains("qemu-img convert", e.Message);
        }
    }

    [RequiresToolFact("virsh")]
    public void Registrar_runs_the_real_virsh_define_with_an_argument_list()
    {
        var r = new LibvirtRegistrar().Register(new LibvirtDomainSpec("it's a \"vm\""), Single("/srv/a b/c.img", MediumFormats.Raw), "test:///default", dryRun: false);
        Assert.True(r.Defined);
        Assert.Equal(new[] { "-c", "test:///default", "define" }, r.Command.Arguments.Take(3));
    }

    [Fact]
    public void A_differencing_image_is_refused_with_the_reason_and_the_clone_to_run()
    {
        var child = new MediumInfo(Guid.NewGuid(), "/vms/child.vdi", MediumFormats.Vdi, 1 << 20, Array.Empty<MediumInfo>());
        var root = new MediumInfo(Guid.NewGuid(), "/vms/base.vdi", MediumFormats.Vdi, 1 << 20, new[] { child });
        var e = Assert.Throws<DiskImageException>(() =>
            LibvirtDomainXml.Build(new LibvirtDomainSpec("x"), new VmDiskState(root, child.Id, Array.Empty<SnapshotInfo>(), null)));
        Assert.Equal(ErrorKind.Unsupported, e.Kind);
        Assert.Contains("QEMU cannot follow VDI parent links", e.Message);
        Assert.Contains("dse clone /vms/child.vdi /vms/child-flat.vdi", e.Message);
    }

    [Fact]
    public void Without_virsh_the_error_names_the_command_to_run()
    {
        var e = Assert.Throws<DiskImageException>(() =>
            new LibvirtRegistrar(new FakeCommandRunner(Array.Empty<string>())).Register(new LibvirtDomainSpec("vm1"), Single("/a.img", MediumFormats.Raw), null, dryRun: false));
        Assert.Equal(ErrorKind.ExternalTool, e.Kind);
        Assert.Contains("virsh define vm1.xml", e.Message);
    }
}
