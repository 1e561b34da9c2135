using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Operations;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Operations;

public class MergeTests
{
    private const long Size = 6L << 20;

    // base <- mid <- top <- leaf (a child of the merged image): returns the expected contents.
    private static (byte[] Base, byte[] Mid, byte[] Top, byte[] Leaf) Build(string folder, string ext, int seed)
    {
        var rng = new Random(seed);
        var model = new byte[Size];
        string P(string n) => Path.Combine(folder, n + ext);
        OpsKit.CreateBase(P("base"), Size);
        OpsKit.RandomWrites(P("base"), rng, 6, model);
        var b = (byte[])model.Clone();
        OpsKit.CreateChild(P("mid"), P("base"));
        OpsKit.RandomWrites(P("mid"), rng, 6, model);
        var m = (byte[])model.Clone();
        OpsKit.CreateChild(P("top"), P("mid"));
        OpsKit.RandomWrites(P("top"), rng, 6, model);
        var t = (byte[])model.Clone();
        OpsKit.CreateChild(P("leaf"), P("top"));
        OpsKit.RandomWrites(P("leaf"), rng, 3, model);
        return (b, m, t, model);
    }

    [Theory]
    [InlineData(".vdi")]
    [InlineData(".vhdx")]
    public async Task Commit_into_the_parent_relinks_children_and_removes_the_image(string ext)
    {
        using var dir = new TempDirectory("merge");
        var (_, _, top, leaf) = Build(dir.Path, ext, 1);
        var result = await Merge.CommitAsync(dir.File("top" + ext));
        Assert.False(File.Exists(dir.File("top" + ext)));
        Assert.Equal(new[] { dir.File("leaf" + ext) }, result.Relinked);
        OpsKit.AssertContent(top, dir.File("mid" + ext), "the parent after the merge");
        OpsKit.AssertContent(leaf, dir.File("leaf" + ext), "the relinked child");
        using var chain = DiskImage.Open(dir.File("leaf" + ext));
        Assert.Equal(dir.File("mid" + ext), chain.Layers[1].Path);
        Assert.False(File.Exists(OperationJournal_PathFor(dir.File("top" + ext))));
    }

    [Fact]
    public async Task Commit_into_a_grandparent_merges_every_layer_between()
    {
        using var dir = new TempDirectory("merge-into");
        var (_, _, top, leaf) = Build(dir.Path, ".vdi", 2);
        var result = await Merge.CommitAsync(dir.File("top.vdi"), dir.File("base.vdi"));
        Assert.Equal(2, result.Removed.Count);
        OpsKit.AssertContent(top, dir.File("base.vdi"), "the ancestor");
        OpsKit.AssertContent(leaf, dir.File("leaf.vdi"), "the relinked child");
    }

    [Fact]
    public async Task Commit_refuses_when_the_target_has_other_dependents_and_lists_them()
    {
        using var dir = new TempDirectory("merge-refuse");
        var (_, mid, top, leaf) = Build(dir.Path, ".vdi", 3);
        OpsKit.CreateChild(dir.File("sibling.vdi"), dir.File("mid.vdi"));
        var before = File.ReadAllBytes(dir.File("mid.vdi"));
        var ex = await Assert.ThrowsAsync<DiskImageException>(() => Merge.CommitAsync(dir.File("top.vdi")));
        Assert.Equal(ErrorKind.ReadOnly, ex.Kind);
        Assert.Contains("sibling.vdi", ex.Message);
        Assert.Equal(before, File.ReadAllBytes(dir.File("mid.vdi")));
        Assert.False(File.Exists(OperationJournal_PathFor(dir.File("top.vdi"))));
        OpsKit.AssertContent(mid, dir.File("sibling.vdi"), "the sibling");
        OpsKit.AssertContent(leaf, dir.File("leaf.vdi"), "the leaf");
        _ = top;
    }

    [Fact]
    public async Task Commit_refuses_when_a_possible_dependent_is_locked_by_a_writer()
    {
        using var dir = new TempDirectory("merge-locked");
        var (_, mid, _, _) = Build(dir.Path, ".vdi", 7);
        OpsKit.CreateChild(dir.File("busy.vdi"), dir.File("mid.vdi"));
        using (var busy = DiskImage.OpenLayer(dir.File("busy.vdi"), writable: true))
        {
            var ex = await Assert.ThrowsAsync<DiskImageException>(() => Merge.CommitAsync(dir.File("top.vdi")));
            Assert.Equal(ErrorKind.Locked, ex.Kind);
            Assert.Contains("busy.vdi", ex.Message);
        }
        OpsKit.AssertContent(mid, dir.File("busy.vdi"), "the busy child");
    }

    [Theory]
    [InlineData(".vdi")]
    [InlineData(".vhdx")]
    public async Task Pull_copies_the_parent_in_and_relinks_to_the_grandparent(string ext)
    {
        using var dir = new TempDirectory("pull");
        var (_, _, top, leaf) = Build(dir.Path, ext, 4);
        var result = await Merge.PullAsync(dir.File("top" + ext));
        Assert.Equal(dir.File("base" + ext), result.Target);
        OpsKit.AssertContent(top, dir.File("top" + ext), "the pulled image");
        OpsKit.AssertContent(leaf, dir.File("leaf" + ext), "the pulled image's child");
        using var chain = DiskImage.Open(dir.File("top" + ext));
        Assert.Equal(dir.File("base" + ext), chain.Layers[1].Path);
    }

    [Fact]
    public async Task Pull_of_a_child_of_a_base_image_is_refused()
    {
        using var dir = new TempDirectory("pull-base");
        Build(dir.Path, ".vdi", 5);
        var ex = await Assert.ThrowsAsync<DiskImageException>(() => Merge.PullAsync(dir.File("mid.vdi")));
        Assert.Equal(ErrorKind.Unsupported, ex.Kind);
    }

    /// <summary>
    /// Kills the merge at every write in turn (the write and everything after it are lost, like kill -9):
    /// afterwards the merged image (while it exists) and its child open and read exactly as before, and running the
    /// merge again completes it with the right content.
    /// </summary>
    [Theory]
    [InlineData(".vdi", false)]
    [InlineData(".vhdx", false)]
    [InlineData(".vdi", true)]
    public async Task Merge_killed_at_every_write_keeps_content_and_finishes_on_rerun(string ext, bool pull)
    {
        using var dir = new TempDirectory("merge-crash");
        string seedDir = Path.Combine(dir.Path, "seed");
        Directory.CreateDirectory(seedDir);
        var (_, _, top, leaf) = Build(seedDir, ext, 6);

        // How many writes a complete run makes.
        string probe = Path.Combine(dir.Path, "probe");
        OpsKit.CopyFolder(seedDir, probe);
        var counting = new CrashPlan();
        await Run(Path.Combine(probe, "top" + ext), counting);
        int total = counting.Writes;
        Assert.True(total > 3, $"only {total} writes");

        for (int n = 0; n < total; n++)
        {
            string work = Path.Combine(dir.Path, $"run{n}");
            OpsKit.CopyFolder(seedDir, work);
            string topPath = Path.Combine(work, "top" + ext), leafPath = Path.Combine(work, "leaf" + ext);
            var plan = new CrashPlan { CrashAtWrite = n };
            await Assert.ThrowsAnyAsync<Exception>(() => Run(topPath, plan));
            Assert.True(plan.Crashed);

            OpsKit.AssertContent(leaf, leafPath, $"after a kill at write {n}/{total}, the child");
            if (File.Exists(topPath)) OpsKit.AssertContent(top, topPath, $"after a kill at write {n}/{total}, the merged image");

            await Run(topPath, null);
            OpsKit.AssertContent(leaf, leafPath, $"after the rerun (kill at {n}), the child");
            if (pull) OpsKit.AssertContent(top, topPath, $"after the rerun (kill at {n}), the pulled image");
            else
            {
                Assert.False(File.Exists(topPath));
                OpsKit.AssertContent(top, Path.Combine(work, "mid" + ext), $"after the rerun (kill at {n}), the parent");
            }
            Assert.False(File.Exists(OperationJournal_PathFor(topPath)));
            Directory.Delete(work, true);
        }

        Task Run(string image, CrashPlan? plan)
        {
            var options = new MergeOptions { Open = OpenOptions.ReadOnly with { FileOpener = plan?.Opener ?? OpenOptions.ReadOnly.FileOpener } };
            return pull ? Merge.PullAsync(image, options) : Merge.CommitAsync(image, null, options);
        }
    }

    internal static string OperationJournal_PathFor(string image) => Path.GetFullPath(image) + ".dse-journal.json";
}
