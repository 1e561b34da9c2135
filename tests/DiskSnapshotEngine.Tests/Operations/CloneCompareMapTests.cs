using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Operations;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Operations;

public class CloneCompareMapTests
{
    private const long Size = 12L << 20;

    // base <- mid <- top, each with random writes; returns the top's path and its expected content.
    private static (string Top, byte[] Model) BuildChain(TempDirectory dir, string ext, int seed)
    {
        var rng = new Random(seed);
        var model = new byte[Size];
        string b = dir.File("base" + ext), m = dir.File("mid" + ext), t = dir.File("top" + ext);
        OpsKit.CreateBase(b, Size);
        OpsKit.RandomWrites(b, rng, 8, model);
        OpsKit.CreateChild(m, b);
        OpsKit.RandomWrites(m, rng, 8, model);
        OpsKit.CreateChild(t, m);
        OpsKit.RandomWrites(t, rng, 8, model);
        return (t, model);
    }

    [Theory]
    [InlineData(".vhdx", ".vdi")]
    [InlineData(".vdi", ".vhdx")]
    [InlineData(".vhdx", ".img")]
    [InlineData(".vdi", ".raw")]
    [InlineData(".vdi", ".vdi")]
    public async Task Full_clone_flattens_a_three_layer_chain_into_any_format(string from, string to)
    {
        using var dir = new TempDirectory("clone");
        var (top, model) = BuildChain(dir, from, from.Length * 31 + to.Length);
        string dst = dir.File("flat" + to);
        var stats = await FullClone.RunAsync(top, dst);

        OpsKit.AssertContent(model, dst, "the clone");
        Assert.True(ImageCompare.Run(top, dst).Identical);
        Assert.False(File.Exists(dst + ".dse-partial"));
        using (var clone = DiskImage.Open(dst))
        {
            Assert.Single(clone.Layers);
            Assert.Null(clone.Top.ParentLink);
            using var source = DiskImage.Open(top);
            if (to != ".img" && to != ".raw")
            {
                Assert.NotEqual(source.Top.Identity.Id, clone.Top.Identity.Id);
                Assert.All(source.Layers, l => Assert.NotEqual(l.Identity.Id, clone.Top.Identity.Id));
            }
            // Only data was written: no more than the data the model holds, rounded to whole chunks.
            long nonZeroMiB = Enumerable.Range(0, (int)(Size >> 20)).Count(i => model.AsSpan(i << 20, 1 << 20).IndexOfAnyExcept((byte)0) >= 0);
            Assert.True(stats.BytesWritten <= nonZeroMiB << 20, $"wrote {stats.BytesWritten} bytes for {nonZeroMiB} MiB holding data");
        }
    }

    [Theory]
    [InlineData(".vdi")]
    [InlineData(".vhdx")]
    public async Task Fixed_clone_allocates_the_whole_disk_and_reads_the_same(string ext)
    {
        using var dir = new TempDirectory("clone-fixed");
        var (top, model) = BuildChain(dir, ".vdi", 9);
        string dst = dir.File("fixed" + ext);
        await FullClone.RunAsync(top, dst, new CloneOptions(Type: ImageType.Fixed));
        OpsKit.AssertContent(model, dst, "the fixed clone");
        using var l = DiskImage.OpenLayer(dst, false);
        Assert.Equal(ImageType.Fixed, l.Type);
        Assert.True(new FileInfo(dst).Length >= Size);
    }

    [RequiresToolFact("qemu-img")]
    public async Task Flat_clones_are_identical_and_clean_for_qemu_img()
    {
        using var dir = new TempDirectory("clone-qemu");
        var (top, model) = BuildChain(dir, ".vhdx", 7);
        string raw = dir.File("flat.img"), vdi = dir.File("flat.vdi"), vhdx = dir.File("flat.vhdx");
        await FullClone.RunAsync(top, raw);
        await FullClone.RunAsync(top, vdi);
        await FullClone.RunAsync(top, vhdx);
        OpsKit.AssertContent(model, raw, "raw clone");
        ExternalTool.RunChecked("qemu-img", "compare", "-f", "raw", "-F", "vdi", raw, vdi);
        ExternalTool.RunChecked("qemu-img", "compare", "-f", "raw", "-F", "vhdx", raw, vhdx);
        ExternalTool.RunChecked("qemu-img", "check", "-f", "vdi", vdi);
        ExternalTool.RunChecked("qemu-img", "check", "-f", "vhdx", vhdx);
    }

    [Fact]
    public async Task A_cancelled_clone_leaves_nothing_behind()
    {
        using var dir = new TempDirectory("clone-cancel");
        var (top, _) = BuildChain(dir, ".vdi", 3);
        string dst = dir.File("flat.vhdx");
        using var cts = new CancellationTokenSource();
        var progress = new CancelAfterFirstReport(cts);
        var ex = await Assert.ThrowsAsync<DiskImageException>(() => FullClone.RunAsync(top, dst, null, progress, cts.Token));
        Assert.Equal(ErrorKind.Cancelled, ex.Kind);
        Assert.False(File.Exists(dst));
        Assert.False(File.Exists(dst + ".dse-partial"));
    }

    private sealed class CancelAfterFirstReport(CancellationTokenSource cts) : IProgress<OperationProgress>
    {
        public void Report(OperationProgress value) => cts.Cancel();
    }

    [Fact]
    public async Task Clone_refuses_to_overwrite()
    {
        using var dir = new TempDirectory("clone-exists");
        var (top, _) = BuildChain(dir, ".vdi", 4);
        File.WriteAllText(dir.File("x.vdi"), "keep");
        var ex = await Assert.ThrowsAsync<DiskImageException>(() => FullClone.RunAsync(top, dir.File("x.vdi")));
        Assert.Equal(ErrorKind.AlreadyExists, ex.Kind);
        Assert.Equal("keep", File.ReadAllText(dir.File("x.vdi")));
    }

    [Fact]
    public void Compare_reports_the_first_differing_byte_across_formats()
    {
        using var dir = new TempDirectory("compare");
        var (top, model) = BuildChain(dir, ".vdi", 11);
        string other = dir.File("other.vhdx");
        OpsKit.CreateBase(other, Size);
        using (var chain = DiskImage.Open(other, OpenOptions.ReadWrite)) { chain.Write(0, model); chain.Flush(); }
        Assert.True(ImageCompare.Run(top, other).Identical);

        long spot = 5_000_123;
        using (var chain = DiskImage.Open(other, OpenOptions.ReadWrite)) { chain.Write(spot, new[] { (byte)(model[spot] ^ 0x5a) }); chain.Flush(); }
        var result = ImageCompare.Run(top, other);
        Assert.False(result.Identical);
        Assert.Equal(spot, result.FirstDifference);
    }

    [Fact]
    public void Compare_of_images_of_different_sizes_is_different_at_the_shorter_end()
    {
        using var dir = new TempDirectory("compare-size");
        OpsKit.CreateBase(dir.File("a.vdi"), 4 << 20);
        OpsKit.CreateBase(dir.File("b.vdi"), 8 << 20);
        var r = ImageCompare.Run(dir.File("a.vdi"), dir.File("b.vdi"));
        Assert.False(r.Identical);
        Assert.Equal(4L << 20, r.FirstDifference);
    }

    [Fact]
    public void Map_names_the_layer_and_file_holding_each_run()
    {
        using var dir = new TempDirectory("map");
        string b = dir.File("b.vdi"), c = dir.File("c.vdi");
        OpsKit.CreateBase(b, 8 << 20);
        using (var chain = DiskImage.Open(b, OpenOptions.ReadWrite)) { chain.Write(1 << 20, new byte[] { 1, 2, 3 }); chain.Flush(); }
        OpsKit.CreateChild(c, b);
        using (var chain = DiskImage.Open(c, OpenOptions.ReadWrite)) { chain.Write(3 << 20, new byte[] { 4 }); chain.Flush(); }
        using var opened = DiskImage.Open(c);
        var map = ImageMap.Enumerate(opened).ToList();
        Assert.Equal(8L << 20, map.Sum(e => e.Length));
        Assert.Equal(0, map[0].Offset);
        var data = map.Where(e => e.Kind == ExtentKind.Data).ToList();
        Assert.Contains(data, e => e.Offset <= 1 << 20 && e.Offset + e.Length > 1 << 20 && e.LayerIndex == 1 && e.File == b);
        Assert.Contains(data, e => e.Offset <= 3 << 20 && e.Offset + e.Length > 3 << 20 && e.LayerIndex == 0 && e.File == c);
        Assert.DoesNotContain(map, e => e.Kind != ExtentKind.Data && e.Offset <= 3 << 20 && e.Offset + e.Length > 3 << 20);
    }
}
