using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.Nbd;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Nbd;

/// <summary>What the handshake announces as the export's description (nbdinfo shows it).</summary>
public class NbdExportDescriptionTests
{
    [Theory]
    [InlineData("qcow2")]
    [InlineData("vdi")]
    [InlineData("vhdx")]
    [InlineData("vhd")]
    public void The_description_names_the_top_file_its_format_as_users_type_it_and_the_layer_count(string ext)
    {
        using var dir = new TempDirectory("nbd-description");
        string parent = dir.File($"base.{ext}"), child = dir.File($"child.{ext}");
        DiskImage.Create(parent, new ImageCreateOptions(1 << 20)).Dispose();
        DiskImage.CreateDifferencing(child, parent).Dispose();
        using var chain = DiskImage.Open(child);
        using var export = new NbdExport(chain, "disk");
        Assert.Equal($"{child} ({ext}, 2 layer(s))", export.Info.Description);
    }
}
