using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Hypervisors.VirtualBox;
using DiskSnapshotEngine.Tests.Formats.Vdi;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Hypervisors;

/// <summary>The VirtualBox media registry as a parent location source, on the real sample .vbox files and crafted ones.</summary>
public sealed class VirtualBoxMediaRegistryTests
{
    private static string Sample(string name)
    {
        var dir = SharedFixtures.SharedDirectory ?? throw new InvalidOperationException("no ../shared");
        return Path.Combine(dir, "vbox", "samples", name);
    }

    [SharedFixtureFact]
    public void Old_namespace_machine_file_lists_nested_differencing_disks_with_absolute_locations()
    {
        string path = Sample("2disks-3snap.vbox");
        string before = ContentHash.OfFile(path);
        var reg = new VirtualBoxMediaRegistry(path);
        Assert.Equal(10, reg.HardDisks.Count);
        var nested = reg.HardDisks.Single(d => d.Uuid == new Guid("64c31740-9498-4c90-866b-650819686ef5"));
        Assert.Equal(new Guid("55c4d273-380b-43c6-b394-b2636051cfc7"), nested.ParentUuid);
        Assert.Equal("VDI", nested.Format);
        Assert.Equal(new[] { "/root/VirtualBox VMs/74864f52-a7b7-4172-a7a5-54b6f3e9cd21/fakedisk-0.vdi" },
            reg.FindCandidates(nested.Uuid));
        Assert.Null(reg.HardDisks.Single(d => d.Uuid == new Guid("105122e9-f6d2-42c1-9c11-c01699c79517")).ParentUuid);
        Assert.Empty(reg.FindCandidates(Guid.NewGuid()));
        Assert.Contains(path, reg.Description);
        Assert.Equal(before, ContentHash.OfFile(path));
    }

    [SharedFixtureFact]
    public void New_namespace_machine_file_resolves_relative_locations_against_its_folder()
    {
        string path = Sample("GOAD-DC01.vbox");
        var reg = new VirtualBoxMediaRegistry(path);
        string folder = Path.GetDirectoryName(path)!;
        Assert.Equal(new[] { Path.Combine(folder, "WindowsServer2019-disk001.vmdk") },
            reg.FindCandidates(new Guid("0898f36f-01c3-4b43-8aeb-36ba7adaef95")));
        Assert.Equal(new[] { Path.Combine(folder, "Snapshots", "{e6800503-8273-4f16-b584-c7ba2c1df698}.vmdk") },
            reg.FindCandidates(new Guid("e6800503-8273-4f16-b584-c7ba2c1df698")));
        var enc = new VirtualBoxMediaRegistry(Sample("encrypted.vbox"));
        Assert.Equal(new[] { Path.Combine(Path.GetDirectoryName(path)!, "encrypted test_1.vdi") },
            enc.FindCandidates(new Guid("1db0b9fe-36c2-44e8-9b7c-61fa5b6d1462")));
    }

    [Fact]
    public void Global_VirtualBox_xml_registry_is_read_and_backslash_relative_paths_work()
    {
        using var dir = new TempDirectory("vbox-reg");
        string xml = dir.File("VirtualBox.xml");
        var a = Guid.NewGuid();
        var b = Guid.NewGuid();
        File.WriteAllText(xml, $$"""
            <?xml version="1.0"?>
            <VirtualBox xmlns="http://www.virtualbox.org/" version="1.12-windows">
              <Global>
                <MachineRegistry/>
                <MediaRegistry>
                  <HardDisks>
                    <HardDisk uuid="{{{a}}}" location="disks\base.vdi" format="VDI" type="Normal">
                      <HardDisk uuid="{{{b}}}" location="/abs/child.vdi" format="VDI"/>
                    </HardDisk>
                  </HardDisks>
                </MediaRegistry>
              </Global>
            </VirtualBox>
            """);
        var reg = new VirtualBoxMediaRegistry(xml);
        Assert.Equal(new[] { Path.Combine(dir.Path, "disks", "base.vdi") }, reg.FindCandidates(a));
        Assert.Equal(new[] { "/abs/child.vdi" }, reg.FindCandidates(b));
        Assert.Equal(a, reg.HardDisks.Single(d => d.Uuid == b).ParentUuid);
    }

    [Theory]
    [InlineData("<VirtualBox xmlns=\"http://example.com/\"/>", ErrorKind.InvalidFormat)]
    [InlineData("<NotVirtualBox xmlns=\"http://www.virtualbox.org/\"/>", ErrorKind.InvalidFormat)]
    [InlineData("<VirtualBox xmlns=\"http://www.virtualbox.org/\"><unclosed></VirtualBox>", ErrorKind.InvalidFormat)]
    [InlineData("<!DOCTYPE x [<!ENTITY a \"aaaa\"><!ENTITY b \"&a;&a;&a;&a;\">]><VirtualBox xmlns=\"http://www.virtualbox.org/\">&b;</VirtualBox>", ErrorKind.InvalidFormat)]
    public void Files_that_are_not_VirtualBox_registries_are_refused_with_a_typed_error(string content, ErrorKind kind)
    {
        using var dir = new TempDirectory("vbox-reg");
        string path = dir.File("x.vbox");
        File.WriteAllText(path, content);
        var e = Assert.Throws<DiskImageException>(() => new VirtualBoxMediaRegistry(path));
        Assert.Equal(kind, e.Kind);
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void A_missing_registry_is_FileNotFound()
    {
        using var dir = new TempDirectory("vbox-reg");
        Assert.Equal(ErrorKind.FileNotFound, Assert.Throws<DiskImageException>(() => new VirtualBoxMediaRegistry(dir.File("none.vbox"))).Kind);
    }
}
