using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.IO;
using DiskSnapshotEngine.Operations;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Operations;

/// <summary>ExtentPlan: the planned ranges read at the layers' file offsets, encoded clusters decoded.</summary>
public class ExtentPlanTests
{
    private const long Size = 24L << 20;

    [Fact]
    public void Plan_reads_every_planned_range_of_a_chain_at_its_virtual_offset()
    {
        using var dir = new TempDirectory("plan");
        // VHDX layers place their blocks anywhere in the file: the plan must read at each extent's file offset.
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
        var actual = new byte[Size];
        foreach (var r in plan.Ranges)
        {
            plan.Read(r.Offset, actual.AsSpan((int)r.Offset, (int)r.Length));
            model.AsSpan((int)r.Offset, (int)r.Length).CopyTo(expected.AsSpan((int)r.Offset));
        }
        Assert.Equal(ContentHash.Of(expected), ContentHash.Of(actual));
    }

    [RequiresToolFact("qemu-img")]
    public async Task Plan_marks_compressed_clusters_and_the_no_sync_export_writes_them_decoded()
    {
        using var dir = new TempDirectory("plan");
        // Plain clusters first, then compressed ones (qemu-img convert -c).
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
        Assert.Contains(plan.Extents, e => !e.IsEncoded && e.Kind == ExtentKind.Data);
        await RawExport.ExportToFileAsync(chain, dir.File("out.raw"), durable: false);
        Assert.Equal(ContentHash.Of(data), ContentHash.OfFile(dir.File("out.raw")));
    }
}
