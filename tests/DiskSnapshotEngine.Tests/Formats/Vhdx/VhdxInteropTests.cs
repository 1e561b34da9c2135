using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Formats.Vhdx;

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

    [RequiresToolFact("qemu-img")]
    public void Writing_into_images_made_by_windows_and_qemu_keeps_them_valid_for_qemu()
    {
        using var dir = new TempDirectory("vhdx");
        var images = new List<string>();
        if (SharedFixtures.FixturesDirectory is not null && Directory.Exists(SharedFixtures.FixturesDirectory))
        {
            images.Add(SharedFixtures.Extract("dynamic.vhdx.gz", dir.Path));
            images.Add(SharedFixtures.Extract("fixed.vhdx.gz", dir.Path));
        }
        var q = dir.File("q.vhdx");
        ExternalTool.RunChecked("qemu-img", "create", "-f", "vhdx", "-o", "log_size=4M,block_size=8M", q, "40M");
        images.Add(q);
        var rng = new Random(11);
        foreach (var vhdx in images)
        {
            var raw = vhdx + ".raw";
            ExternalTool.RunChecked("qemu-img", "convert", "-f", "vhdx", "-O", "raw", vhdx, raw);
            using (var chain = DiskImage.Open(vhdx, OpenOptions.ReadWrite))
            using (var rawFile = new FileStream(raw, FileMode.Open, FileAccess.ReadWrite))
            {
                foreach (long off in new long[] { 0, 1_234_567, chain.VirtualSize / 2 + 333, chain.VirtualSize - 70_000 })
                {
                    var data = new byte[rng.Next(1, 65_536)];
                    rng.NextBytes(data);
                    chain.Write(off, data);
                    rawFile.Position = off;
                    rawFile.Write(data);
                }
                chain.WriteZeroes(0, Math.Min(chain.VirtualSize, 64L << 20) / 2);
                rawFile.Position = 0;
                rawFile.Write(new byte[Math.Min(chain.VirtualSize, 64L << 20) / 2]);
            }
            ExternalTool.RunChecked("qemu-img", "check", "-f", "vhdx", vhdx);
            Assert.Contains("identical", ExternalTool.RunChecked("qemu-img", "compare", "-f", "vhdx", "-F", "raw", vhdx, raw));
            using var reopened = DiskImage.Open(vhdx);
            VhdxTestUtil.AssertSameAsRaw(reopened, raw);
            Assert.False(reopened.Check().HasErrors, string.Join("\n", reopened.Check().Problems));
        }
    }
}
