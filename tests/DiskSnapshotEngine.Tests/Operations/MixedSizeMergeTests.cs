using DiskSnapshotEngine.Operations;
using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;
using static DiskSnapshotEngine.Tests.Operations.DifferencingResizeTests;

namespace DiskSnapshotEngine.Tests.Operations;

/// <summary>Merge and pull over layers of different sizes: a smaller target grows first, a shorter layer's end hides what lies below.</summary>
public class MixedSizeMergeTests
{
    [RequiresToolTheory("qemu-img")]
    [InlineData(".vhdx")]
    [InlineData(".qcow2")]
    public async Task Merging_a_larger_child_grows_its_parent_first(string ext)
    {
        using var dir = new TempDirectory("diff-resize-merge");
        string child = dir.File("child" + ext), parent = dir.File("base" + ext);
        var model = await GrownChildAsync(dir.Path, ext, 34, 9L << 20);
        WriteAt(child, 8L << 20, RandomData.Bytes(1 << 20, 35), model);

        var r = await CliRunner.RunAsync("merge", child);
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.False(File.Exists(child));
        OpsKit.AssertContent(model, parent, "the parent after the merge");
        ExternalTool.RunChecked("qemu-img", "check", parent);
        var raw = dir.File("expected.raw");
        File.WriteAllBytes(raw, model);
        ExternalTool.RunChecked("qemu-img", "compare", "-F", "raw", parent, raw);
    }

    /// <summary>A target whose BAT region has no room for the merged image's size is rewritten larger first, identity kept.</summary>
    [RequiresToolFact("qemu-img")]
    public async Task Merging_a_much_larger_child_rewrites_its_parent_larger_first()
    {
        using var dir = new TempDirectory("diff-resize-merge-big");
        string child = dir.File("child.vhdx"), parent = dir.File("base.vhdx");
        var small = BaseAndChild(dir.Path, ".vhdx", 46);
        Guid id;
        using (var l = DiskImage.OpenLayer(parent, false)) id = l.Identity.Id;
        await Resize.RunAsync(child, 300L << 30, false);
        var tail = RandomData.Bytes(8192, 47);
        using (var chain = DiskImage.Open(child, OpenOptions.ReadWrite)) chain.Write((300L << 30) - 8192, tail);

        await Merge.CommitAsync(child);
        using (var chain = DiskImage.Open(parent))
        {
            Assert.Equal(300L << 30, chain.VirtualSize);
            Assert.Equal(id, chain.Top.Identity.Id);
            var head = new byte[Size];
            chain.Read(0, head);
            Assert.Equal(-1, OpsKit.FirstDifference(small, head));
            var end = new byte[8192];
            chain.Read((300L << 30) - 8192, end);
            Assert.Equal(tail, end);
        }
        ExternalTool.RunChecked("qemu-img", "check", parent);
    }

    /// <summary>qemu makes an overlay smaller than its backing file; merging it while a child depends on it would show that child the parent's bytes past the overlay's end.</summary>
    [RequiresToolFact("qemu-img")]
    public async Task Merging_a_smaller_child_with_dependents_over_parent_data_is_refused_unchanged()
    {
        using var dir = new TempDirectory("diff-resize-merge-small");
        var (b, small, leaf) = ShortMiddleChain(dir, "small.qcow2", "leaf.qcow2");
        var before = OpsKit.ReadAll(leaf);
        Assert.All(before.AsSpan(4 << 20).ToArray(), x => Assert.Equal(0, x));
        var files = Directory.GetFiles(dir.Path).ToDictionary(f => f, File.ReadAllBytes);
        var r = await CliRunner.RunAsync("merge", small);
        Assert.Equal(5, r.ExitCode);
        Assert.Contains("past the image's end", r.StdErr);
        foreach (var (f, bytes) in files) Assert.Equal(bytes, File.ReadAllBytes(f));
        // Without dependents the parent keeps its size and its data past the image's end, as qemu-img commit does.
        File.Delete(leaf);
        var alone = await CliRunner.RunAsync("merge", small);
        Assert.True(alone.ExitCode == 0, alone.ToString());
        ExternalTool.RunChecked("qemu-img", "check", b);
        Assert.Equal(6L << 20, OpsKit.ReadAll(b).Length);
    }

    /// <summary>
    /// A commit through a shorter middle layer (qemu: an overlay smaller than its backing file, under a larger one): the
    /// middle layer's end hid the base's bytes, so the commit writes zeros over them in the base.
    /// </summary>
    [RequiresToolFact("qemu-img")]
    public async Task Committing_through_a_shorter_middle_layer_zeroes_what_it_hid()
    {
        using var dir = new TempDirectory("diff-resize-middle");
        var (b, mid, top) = ShortMiddleChain(dir, "mid.qcow2", "top.qcow2");
        ExternalTool.RunChecked("qemu-io", "-c", "write -P 0x12 1M 64K", top);
        string expected = dir.File("expected.raw");
        ExternalTool.RunChecked("qemu-img", "convert", "-O", "raw", top, expected);
        var model = File.ReadAllBytes(expected);
        Assert.All(model.AsSpan(4 << 20).ToArray(), x => Assert.Equal(0, x));

        var r = await CliRunner.RunAsync("merge", top, "--into", b);
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.False(File.Exists(top) || File.Exists(mid));
        OpsKit.AssertContent(model, b, "the base after the commit");
        ExternalTool.RunChecked("qemu-img", "check", b);
        ExternalTool.RunChecked("qemu-img", "compare", "-F", "raw", b, expected);
    }

    /// <summary>The merge that grows its target, killed at every write: the old content or the new, and a rerun finishes.</summary>
    [Fact]
    public async Task Merge_that_grows_the_parent_killed_at_every_write_finishes_on_rerun()
    {
        using var dir = new TempDirectory("diff-resize-merge-crash");
        string seed = Path.Combine(dir.Path, "seed");
        Directory.CreateDirectory(seed);
        var model = await GrownChildAsync(seed, ".vhdx", 38, 9L << 20);
        WriteAt(Path.Combine(seed, "child.vhdx"), (8L << 20) + 512, RandomData.Bytes(300_000, 39), model);

        var counting = new CrashPlan();
        string probe = Path.Combine(dir.Path, "probe");
        OpsKit.CopyFolder(seed, probe);
        await Run(Path.Combine(probe, "child.vhdx"), counting);
        int total = counting.Writes;
        for (int n = 0; n < total; n++)
        {
            string work = Path.Combine(dir.Path, $"run{n}");
            OpsKit.CopyFolder(seed, work);
            string child = Path.Combine(work, "child.vhdx"), parent = Path.Combine(work, "base.vhdx");
            var plan = new CrashPlan { CrashAtWrite = n };
            await Assert.ThrowsAnyAsync<Exception>(() => Run(child, plan));
            Assert.True(plan.Crashed);
            if (File.Exists(child)) OpsKit.AssertContent(model, child, $"after a kill at write {n}/{total}, the child");
            await Run(child, null);
            Assert.False(File.Exists(child));
            OpsKit.AssertContent(model, parent, $"after the rerun (kill at {n}), the parent");
            Directory.Delete(work, true);
        }

        static Task Run(string image, CrashPlan? plan) =>
            Merge.CommitAsync(image, null, new MergeOptions { Open = OpenOptions.ReadOnly with { FileOpener = plan?.Opener ?? OpenOptions.ReadOnly.FileOpener } });
    }

    [Fact]
    public async Task Pull_into_a_larger_child_pulls_only_the_parents_range()
    {
        using var dir = new TempDirectory("diff-resize-pull");
        string b = dir.File("base.vhdx"), mid = dir.File("mid.vhdx"), top = dir.File("top.vhdx");
        var model = new byte[Size];
        OpsKit.CreateBase(b, Size, 1 << 20);
        OpsKit.RandomWrites(b, new Random(40), 5, model);
        OpsKit.CreateChild(mid, b);
        OpsKit.RandomWrites(mid, new Random(41), 5, model);
        OpsKit.CreateChild(top, mid);
        Assert.Equal(0, (await CliRunner.RunAsync("resize", top, "--size", "10M")).ExitCode);
        var grown = new byte[10L << 20];
        model.CopyTo(grown, 0);
        WriteAt(top, 9L << 20, RandomData.Bytes(4096, 42), grown);
        long before = new FileInfo(top).Length;

        var r = await CliRunner.RunAsync("merge", top, "--pull");
        Assert.True(r.ExitCode == 0, r.ToString());
        OpsKit.AssertContent(grown, top, "the pulled child");
        using var chain = DiskImage.Open(top);
        Assert.Equal(b, chain.Layers[1].Path);
        // Nothing past the parent's end was written as data.
        Assert.DoesNotContain(chain.GetExtents(Size, (9L << 20) - Size), e => e.Kind == DiskSnapshotEngine.Block.ExtentKind.Data && e.LayerIndex == 0);
        Assert.True(new FileInfo(top).Length > before);
    }

    // qemu's chain base.qcow2 (6 MiB of 0x77) <- a 4 MiB overlay <- a 6 MiB overlay: the middle layer's end hides the
    // base's last 2 MiB from the top.
    private static (string Base, string Middle, string Top) ShortMiddleChain(TempDirectory dir, string middle, string top)
    {
        string b = dir.File("base.qcow2"), m = dir.File(middle), t = dir.File(top);
        ExternalTool.RunChecked("qemu-img", "create", "-q", "-f", "qcow2", b, "6M");
        ExternalTool.RunChecked("qemu-io", "-c", "write -P 0x77 0 6M", b);
        ExternalTool.RunChecked("qemu-img", "create", "-q", "-f", "qcow2", "-b", b, "-F", "qcow2", m, "4M");
        ExternalTool.RunChecked("qemu-img", "create", "-q", "-f", "qcow2", "-b", m, "-F", "qcow2", t, "6M");
        return (b, m, t);
    }
}
