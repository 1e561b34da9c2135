using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Vhdx;

public class VhdxInteropTests
{
    [RequiresToolFact("vhdiinfo")]
    public void Vhdiinfo_reads_our_grandchild_as_differencing_and_shows_its_parent()
    {
        using var dir = new TempDirectory("vhdx");
        var basePath = dir.File("base.vhdx");
        DiskImage.Create(basePath, new ImageCreateOptions(16L << 20, BlockSize: 1 << 20)).Dispose();
        var childPath = dir.File("child.vhdx");
        DiskImage.CreateDifferencing(childPath, basePath).Dispose();
        var grandchild = dir.File("grandchild.vhdx");
        using (var g = DiskImage.CreateDifferencing(grandchild, childPath)) g.Write(0, new byte[512].Select(_ => (byte)1).ToArray());
        Guid childDiskId, childVersion;
        using (var c = DiskImage.OpenLayer(childPath, false)) (childDiskId, childVersion) = (c.Identity.Id, c.Identity.Version);
        var output = ExternalTool.RunChecked("vhdiinfo", grandchild);
        Guid grandchildId;
        using (var g = DiskImage.OpenLayer(grandchild, false)) grandchildId = g.Identity.Version;
        string Field(string name) => output.Split('\n').Select(l => l.Trim()).First(l => l.StartsWith(name + "\t", StringComparison.Ordinal) || l.StartsWith(name + " ", StringComparison.Ordinal)).Split(':', 2)[1].Trim();
        Assert.Equal("Differential", Field("Disk type"));
        Assert.Equal("16 MiB (16777216 bytes)", Field("Media size"));
        // libvhdi names the DataWriteGuid "Identifier", which is what a child of it would record.
        Assert.Equal(grandchildId, Guid.Parse(Field("Identifier")));
        // libvhdi shows parent_linkage: the child's DataWriteGuid at link time.
        Assert.Equal(childVersion, Guid.Parse(Field("Parent identifier")));
        Assert.NotEqual(childDiskId, childVersion);
    }
}
