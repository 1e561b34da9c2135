using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Hypervisors.HyperV;
using DiskSnapshotEngine.Hypervisors.Libvirt;
using DiskSnapshotEngine.Hypervisors.Model;

namespace DiskSnapshotEngine.Tests.Formats.Vhd;

/// <summary>A VHD disk for the hypervisors: Hyper-V generation 1 takes it (generation 2 needs VHDX); QEMU calls it vpc.</summary>
public sealed class VhdHypervisorTests
{
    private static VmDiskState Vhd(string path)
    {
        var m = new MediumInfo(Guid.NewGuid(), path, MediumFormats.Vhd, 1L << 30, Array.Empty<MediumInfo>());
        return new VmDiskState(m, m.Id, Array.Empty<SnapshotInfo>(), null);
    }

    [Fact]
    public void Hyper_V_generation_1_attaches_a_VHD_and_generation_2_refuses_it()
    {
        var script = HyperVScript.Register(new HyperVVmSpec("old", Generation: 1), Vhd("/d/disk.vhd"));
        Assert.Contains("Add-VMHardDiskDrive", script);
        Assert.Contains("disk.vhd", script);
        var e = Assert.Throws<DiskImageException>(() => HyperVScript.Register(new HyperVVmSpec("new", Generation: 2), Vhd("/d/disk.vhd")));
        Assert.Equal(ErrorKind.Unsupported, e.Kind);
        Assert.Contains("dse clone /d/disk.vhd /d/disk.vhdx", e.Message);
    }

    [Fact]
    public void QEMU_names_the_VHD_driver_vpc() => Assert.Equal("vpc", LibvirtDomainXml.DriverType(MediumFormats.Vhd));

    [Fact]
    public void A_VHD_layer_maps_to_VirtualBox_s_VHD_backend() => Assert.Equal("VHD", MediumFormats.Of(DiskSnapshotEngine.Block.ImageFormat.Vhd));
}
