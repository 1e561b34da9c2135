using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.IO;
using DiskSnapshotEngine.Operations;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Operations;

/// <summary>ExtentPlan.CopyInKernel: the kernel copies planned data from the layers' files, and says where it stopped.</summary>
public class ExtentPlanTests
{
    private const long Size = 24L << 20;

    [Fact]
    public void Kernel_copies_every_planned_range_of_a_chain_to_the_same_virtual_offsets()
    {
        using var dir = new TempDirectory("plan");
        // VHDX layers place their blocks anywhere in the file: the copy must read at each extent's file offset.
        var rng = new Random(151);
        var model = new byte[Size];
        OpsKit.CreateBase(dir.File("base.vhdx"), Size, blockSize: 1 << 20);
        OpsKit.RandomWrites(dir.File("base.vhdx"), rng, 10, model);
        OpsKit.CreateChild(dir.File("top.vhdx"), dir.File("base.vhdx"));
        OpsKit.RandomWrites(dir.File("top.vhdx"), rng, 10, model);
        using var chain = DiskImage.Open(dir.File("top.vhdx"));
        var plan = ExtentPlan.Of(chain);
        Assert.Contains(plan.Extents, e => e.LayerIndex == 0);
        Assert.Contains(plan.Extents, e => e.LayerIndex == 1);

        var expected = new byte[Size];
        using (var target = ImageFile.Create(dir.File("out.raw")))
        {
            target.SetLength(Size);
            foreach (var r in plan.Ranges)
            {
                Assert.Equal(r.Length, plan.CopyInKernel(r.Offset, r.Length, target));
                model.AsSpan((int)r.Offset, (int)r.Length).CopyTo(expected.AsSpan((int)r.Offset));
            }
        }
        Assert.Equal(ContentHash.Of(expected), ContentHash.OfFile(dir.File("out.raw")));
    }

    [Fact]
    public void Kernel_copy_reports_a_short_copy_where_the_source_file_ends_early()
    {
        using var dir = new TempDirectory("plan");
        var data = RandomData.Bytes(8 << 20, 152);
        File.WriteAllBytes(dir.File("d.img"), data);
        using var chain = DiskImage.Open(dir.File("d.img"));
        var plan = ExtentPlan.Of(chain, skipFileHoles: false);
        // The file shrinks after the plan was made (another program, a -U read): the kernel copies up to the end.
        long shortEnd = (3 << 20) + 5;
        using (var shrink = new FileStream(dir.File("d.img"), FileMode.Open, FileAccess.Write, FileShare.ReadWrite))
            shrink.SetLength(shortEnd);
        using (var target = ImageFile.Create(dir.File("out.raw")))
            Assert.Equal(shortEnd, plan.CopyInKernel(0, data.Length, target));
        Assert.Equal(data.AsSpan(0, (int)shortEnd).ToArray(), File.ReadAllBytes(dir.File("out.raw")));
    }

    [RequiresToolFact("qemu-img")]
    public async Task Kernel_copy_stops_at_compressed_clusters_and_the_no_sync_export_writes_them_decoded()
    {
        using var dir = new TempDirectory("plan");
        // Plain clusters first, then compressed ones (qemu-img convert -c), so the copy starts and then stops.
        // Compressible (qemu-img stores a cluster compressed only when that is smaller) and never zero.
        var data = new byte[4 << 20];
        for (int i = 0; i < data.Length; i++) data[i] = (byte)(1 + i % 251);
        File.WriteAllBytes(dir.File("d.raw"), data);
        ExternalTool.RunChecked("qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2", dir.File("d.raw"), dir.File("c.qcow2"));
        ExternalTool.RunChecked("qemu-img", "create", "-f", "qcow2", "-b", dir.File("c.qcow2"), "-F", "qcow2", dir.File("top.qcow2"));
        ExternalTool.RunChecked("qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 0 1M", dir.File("top.qcow2"));
        data.AsSpan(0, 1 << 20).Fill(0x5a);

        using var chain = DiskImage.Open(dir.File("top.qcow2"));
        var plan = ExtentPlan.Of(chain);
        Assert.Contains(plan.Extents, e => e.IsEncoded);
        using (var target = ImageFile.Create(dir.File("copy.raw")))
            Assert.Equal(1 << 20, plan.CopyInKernel(0, 4 << 20, target));
        await RawExport.ExportToFileAsync(chain, dir.File("out.raw"), durable: false);
        Assert.Equal(ContentHash.Of(data), ContentHash.OfFile(dir.File("out.raw")));
    }

    [RequiresMountFact]
    public void Kernel_copy_from_another_file_system_copies_nothing()
    {
        using var fs = SmallFileSystem.TryMount(16)!;
        using var dir = new TempDirectory("plan");
        File.WriteAllBytes(fs.File("d.img"), RandomData.Bytes(4 << 20, 153));
        using var chain = DiskImage.Open(fs.File("d.img"));
        var plan = ExtentPlan.Of(chain);
        using (var target = ImageFile.Create(dir.File("out.raw")))
        {
            Assert.Equal(0, plan.CopyInKernel(0, 4 << 20, target));
            Assert.Equal(0, plan.CopyInKernel(1 << 20, 1 << 20, target));
        }
        Assert.Equal(0, new FileInfo(dir.File("out.raw")).Length);
    }
}
