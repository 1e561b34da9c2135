using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Operations;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Operations;

public class RebaseCompactTests
{
    private const long Size = 6L << 20;

    [Theory]
    [InlineData(".vdi")]
    [InlineData(".vhdx")]
    public async Task Safe_rebase_onto_an_unrelated_image_keeps_the_content_and_the_children(string ext)
    {
        using var dir = new TempDirectory("rebase");
        var rng = new Random(21);
        var model = new byte[Size];
        var otherModel = new byte[Size];
        OpsKit.CreateBase(dir.File("old" + ext), Size);
        OpsKit.RandomWrites(dir.File("old" + ext), rng, 8, model);
        OpsKit.CreateBase(dir.File("new" + ext), Size);
        OpsKit.RandomWrites(dir.File("new" + ext), rng, 8, otherModel);
        OpsKit.CreateChild(dir.File("img" + ext), dir.File("old" + ext));
        OpsKit.RandomWrites(dir.File("img" + ext), rng, 4, model);
        var imgContent = (byte[])model.Clone();
        OpsKit.CreateChild(dir.File("kid" + ext), dir.File("img" + ext));
        OpsKit.RandomWrites(dir.File("kid" + ext), rng, 2, model);

        var result = await Rebase.RunAsync(dir.File("img" + ext), dir.File("new" + ext));
        Assert.Equal("safe", result.Mode);
        Assert.True(result.Stats.BytesWritten + result.Stats.BytesZero > 0);
        OpsKit.AssertContent(imgContent, dir.File("img" + ext), "the rebased image");
        OpsKit.AssertContent(model, dir.File("kid" + ext), "the rebased image's child");
        using var chain = DiskImage.Open(dir.File("img" + ext));
        Assert.Equal(dir.File("new" + ext), chain.Layers[1].Path);
    }

    [Fact]
    public async Task Unsafe_rebase_refuses_a_different_parent_and_accepts_an_equal_one()
    {
        using var dir = new TempDirectory("rebase-unsafe");
        var rng = new Random(22);
        var model = new byte[Size];
        OpsKit.CreateBase(dir.File("old.vdi"), Size);
        OpsKit.RandomWrites(dir.File("old.vdi"), rng, 5, model);
        OpsKit.CreateChild(dir.File("img.vdi"), dir.File("old.vdi"));
        OpsKit.RandomWrites(dir.File("img.vdi"), rng, 3, model);
        await FullClone.RunAsync(dir.File("old.vdi"), dir.File("equal.vhdx"));
        OpsKit.CreateBase(dir.File("empty.vdi"), Size);

        var ex = await Assert.ThrowsAsync<DiskImageException>(() => Rebase.RunAsync(dir.File("img.vdi"), dir.File("empty.vdi"), unsafeMode: true));
        Assert.Equal(ErrorKind.ParentMismatch, ex.Kind);
        OpsKit.AssertContent(model, dir.File("img.vdi"), "after a refused rebase");

        var ok = await Rebase.RunAsync(dir.File("img.vdi"), dir.File("equal.vhdx"), unsafeMode: true);
        Assert.Equal("content", ok.Mode);
        Assert.Equal(0, ok.Stats.BytesWritten);
        OpsKit.AssertContent(model, dir.File("img.vdi"), "after an unsafe rebase onto an equal parent");
    }

    [Fact]
    public async Task A_moved_parent_is_relinked_in_one_command()
    {
        using var dir = new TempDirectory("rebase-moved");
        var rng = new Random(23);
        var model = new byte[Size];
        OpsKit.CreateBase(dir.File("p.vhdx"), Size);
        OpsKit.RandomWrites(dir.File("p.vhdx"), rng, 5, model);
        OpsKit.CreateChild(dir.File("c.vhdx"), dir.File("p.vhdx"));
        OpsKit.RandomWrites(dir.File("c.vhdx"), rng, 3, model);
        Directory.CreateDirectory(dir.File("moved"));
        File.Move(dir.File("p.vhdx"), dir.File("moved/p.vhdx"));
        Assert.Equal(ErrorKind.ParentNotFound, Assert.Throws<DiskImageException>(() => DiskImage.Open(dir.File("c.vhdx")).Dispose()).Kind);

        var result = await Rebase.RunAsync(dir.File("c.vhdx"), dir.File("moved/p.vhdx"));
        Assert.Equal("identity", result.Mode);
        OpsKit.AssertContent(model, dir.File("c.vhdx"), "the relinked child");
    }

    [RequiresToolTheory("qemu-img")]
    [InlineData(".vdi")]
    [InlineData(".vhdx")]
    public async Task Compact_gives_back_zero_blocks_and_keeps_identity_content_and_children(string ext)
    {
        using var dir = new TempDirectory("compact");
        string img = dir.File("img" + ext);
        OpsKit.CreateBase(img, 16L << 20, ext == ".vhdx" ? 1 << 20 : null);
        var model = new byte[16L << 20];
        var rng = new Random(24);
        using (var chain = DiskImage.Open(img, OpenOptions.ReadWrite))
        {
            var data = new byte[1 << 20];
            for (int i = 0; i < 12; i++) { rng.NextBytes(data); chain.Write((long)i << 20, data); data.CopyTo(model, (long)i << 20); }
            // Overwrite blocks with zero data: they stay allocated in the file until compact.
            Array.Clear(data);
            for (int i = 2; i < 10; i++) { chain.Write((long)i << 20, data); Array.Clear(model, i << 20, 1 << 20); }
            chain.Flush();
        }
        OpsKit.CreateChild(dir.File("kid" + ext), img);
        Guid id;
        using (var l = DiskImage.OpenLayer(img, false)) id = l.Identity.Id;
        long before = new FileInfo(img).Length;

        var result = await Compact.RunAsync(img);
        Assert.True(result.SizeAfter < before, $"{before} -> {result.SizeAfter}");
        Assert.True(result.SizeAfter <= before - (6L << 20), $"{before} -> {result.SizeAfter}");
        OpsKit.AssertContent(model, img, "the compacted image");
        OpsKit.AssertContent(model, dir.File("kid" + ext), "the compacted image's child");
        using (var l = DiskImage.OpenLayer(img, false)) Assert.Equal(id, l.Identity.Id);
        Assert.False(File.Exists(img + Compact.TempSuffix));
        ExternalTool.RunChecked("qemu-img", "check", img);
    }

    [Fact]
    public async Task Compact_of_a_differencing_image_keeps_zeros_that_hide_parent_data()
    {
        using var dir = new TempDirectory("compact-diff");
        var rng = new Random(25);
        var model = new byte[Size];
        OpsKit.CreateBase(dir.File("p.vdi"), Size);
        using (var chain = DiskImage.Open(dir.File("p.vdi"), OpenOptions.ReadWrite))
        {
            var all = new byte[Size];
            rng.NextBytes(all);
            chain.Write(0, all);
            all.CopyTo(model, 0);
            chain.Flush();
        }
        OpsKit.CreateChild(dir.File("c.vdi"), dir.File("p.vdi"));
        using (var chain = DiskImage.Open(dir.File("c.vdi"), OpenOptions.ReadWrite))
        {
            chain.Write(1 << 20, new byte[1 << 20]);
            Array.Clear(model, 1 << 20, 1 << 20);
            chain.Flush();
        }
        OpsKit.RandomWrites(dir.File("c.vdi"), rng, 4, model);
        await Compact.RunAsync(dir.File("c.vdi"));
        OpsKit.AssertContent(model, dir.File("c.vdi"), "the compacted child");
    }

    /// <summary>Compact killed at every write of the new file: the original is untouched and a rerun completes.</summary>
    [Fact]
    public async Task Compact_killed_at_any_point_leaves_the_original_and_reruns()
    {
        using var dir = new TempDirectory("compact-crash");
        var rng = new Random(26);
        var model = new byte[Size];
        string img = dir.File("img.vdi");
        OpsKit.CreateBase(img, Size);
        OpsKit.RandomWrites(img, rng, 10, model);
        var original = File.ReadAllBytes(img);
        int cancelled = 0;
        // The new file is written through ImageFile.Create; cancellation after N progress reports stands in for the kill.
        for (int n = 0; n < 6; n++)
        {
            using var cts = new CancellationTokenSource();
            var progress = new CancelAfter(n, cts);
            try { await Compact.RunAsync(img, null, progress, cts.Token); }
            catch (DiskImageException e) when (e.Kind == ErrorKind.Cancelled) { }
            if (progress.Cancelled)
            {
                cancelled++;
                Assert.Equal(original, File.ReadAllBytes(img));
                Assert.False(File.Exists(img + Compact.TempSuffix));
            }
            else
            {
                // The run finished before the n-th report: the image is compacted, same content.
                OpsKit.AssertContent(model, img, $"after an uncancelled compact (n = {n})");
                original = File.ReadAllBytes(img);
            }
        }
        Assert.True(cancelled >= 2, $"only {cancelled} runs were interrupted");
        // A stale temporary file from a killed run is replaced by the next run; and no write at all reaches the
        // original or its parents through the opener (a kill at their first write would throw): before the final
        // rename only the temporary file is written, so a kill at any write leaves the original as it was.
        File.WriteAllText(img + Compact.TempSuffix, "stale");
        var plan = new CrashPlan { CrashAtWrite = 0 };
        await Compact.RunAsync(img, OpenOptions.ReadOnly with { FileOpener = plan.Opener });
        Assert.Equal(0, plan.Writes);
        OpsKit.AssertContent(model, img, "after compact");
    }

    private sealed class CancelAfter(int reports, CancellationTokenSource cts) : IProgress<OperationProgress>
    {
        private int _seen;
        public bool Cancelled { get; private set; }
        public void Report(OperationProgress value)
        {
            if (_seen++ == reports) { Cancelled = true; cts.Cancel(); }
        }
    }
}
