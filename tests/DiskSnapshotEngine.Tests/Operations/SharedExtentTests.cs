using DiskSnapshotEngine.Operations;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Operations;

/// <summary>Export and clone to raw share block-aligned data with the source where the file system has reflink, and copy it elsewhere.</summary>
public class SharedExtentTests
{
    private const long Size = 64L << 20;

    // A two-layer chain (VHDX unless told) with data in both layers (random writes of random lengths, so some extents
    // are unaligned); the top is dir/top.EXT.
    private static byte[] Chain(string dir, string ext = ".vhdx", int seed = 141)
    {
        var rng = new Random(seed);
        var model = new byte[Size];
        OpsKit.CreateBase(Path.Combine(dir, "base" + ext), Size, blockSize: 1 << 20);
        OpsKit.RandomWrites(Path.Combine(dir, "base" + ext), rng, 12, model);
        OpsKit.CreateChild(Path.Combine(dir, "top" + ext), Path.Combine(dir, "base" + ext));
        OpsKit.RandomWrites(Path.Combine(dir, "top" + ext), rng, 12, model);
        return model;
    }

    [RequiresReflinkFact]
    public async Task Export_and_raw_clone_on_xfs_share_the_layers_extents_and_read_the_same()
    {
        using var fs = ReflinkFileSystem.Mount(400);
        var model = Chain(fs.Path);
        using (var chain = DiskImage.Open(fs.File("top.vhdx")))
            await RawExport.ExportToFileAsync(chain, fs.File("out.raw"));
        await FullClone.RunAsync(fs.File("top.vhdx"), fs.File("clone.raw"));

        foreach (var output in new[] { "out.raw", "clone.raw" })
        {
            Assert.Equal(ContentHash.Of(model), ContentHash.OfFile(fs.File(output)));
            Assert.True(ReflinkFileSystem.SharedBytes(fs.File(output)) >= 1 << 20, $"{output} shares no extent with the chain");
        }
    }

    [RequiresReflinkFact]
    public async Task Vhdx_clone_on_xfs_places_blocks_on_shared_extents_and_passes_qemu_img()
    {
        using var fs = ReflinkFileSystem.Mount(400);
        var model = Chain(fs.Path);
        // The source's own block size (1 MiB) and a larger one: both place each aligned extent whole in fresh blocks.
        foreach (var (name, blockSize) in new[] { ("same.vhdx", 1 << 20), ("larger.vhdx", 8 << 20) })
        {
            await FullClone.RunAsync(fs.File("top.vhdx"), fs.File(name), new CloneOptions(BlockSize: blockSize));
            OpsKit.AssertContent(model, fs.File(name), $"the clone {name}");
            long sharedBytes = ReflinkFileSystem.SharedBytes(fs.File(name));
            Assert.True(sharedBytes >= 1 << 20, $"{name} shares only {sharedBytes} bytes with the chain");
            if (!ExternalTool.Has("qemu-img")) continue;
            ExternalTool.RunChecked("qemu-img", "check", "-f", "vhdx", fs.File(name));
            // qemu reads no differencing VHDX, so it compares the clone with the model as a raw file.
            if (!File.Exists(fs.File("model.raw"))) File.WriteAllBytes(fs.File("model.raw"), model);
            ExternalTool.RunChecked("qemu-img", "compare", "-f", "vhdx", "-F", "raw", fs.File(name), fs.File("model.raw"));
        }
    }

    [RequiresReflinkFact]
    public async Task Vhdx_clone_across_file_systems_copies_every_byte()
    {
        using var fs = ReflinkFileSystem.Mount(300);
        using var dir = new TempDirectory("shared-extents");
        var model = Chain(dir.Path);
        await FullClone.RunAsync(dir.File("top.vhdx"), fs.File("clone.vhdx"));
        OpsKit.AssertContent(model, fs.File("clone.vhdx"), "a clone that could share nothing");
        Assert.Equal(0, ReflinkFileSystem.SharedBytes(fs.File("clone.vhdx")));
    }

    [RequiresReflinkFact]
    public async Task Vdi_clone_on_xfs_places_blocks_on_shared_extents_and_passes_qemu_img()
    {
        using var fs = ReflinkFileSystem.Mount(400);
        var model = Chain(fs.Path, ".vdi", seed: 142);
        await FullClone.RunAsync(fs.File("top.vdi"), fs.File("clone.vdi"));
        OpsKit.AssertContent(model, fs.File("clone.vdi"), "the VDI clone");
        long sharedBytes = ReflinkFileSystem.SharedBytes(fs.File("clone.vdi"));
        Assert.True(sharedBytes >= 1 << 20, $"clone.vdi shares only {sharedBytes} bytes with the chain");
        if (!ExternalTool.Has("qemu-img")) return;
        ExternalTool.RunChecked("qemu-img", "check", "-f", "vdi", fs.File("clone.vdi"));
        File.WriteAllBytes(fs.File("model.raw"), model);
        ExternalTool.RunChecked("qemu-img", "compare", "-f", "vdi", "-F", "raw", fs.File("clone.vdi"), fs.File("model.raw"));
    }

    [RequiresReflinkFact]
    public async Task Merge_on_xfs_shares_the_childs_extents_with_the_parent_and_reads_the_same()
    {
        using var fs = ReflinkFileSystem.Mount(400);
        var model = Chain(fs.Path, ".vhdx", seed: 143);
        // A second name keeps the child's extents alive after the merge deletes it, so sharing stays visible.
        ExternalTool.RunChecked("ln", fs.File("top.vhdx"), fs.File("kept.vhdx"));
        var result = await Merge.CommitAsync(fs.File("top.vhdx"), options: new MergeOptions { Open = OpenOptions.ReadOnly with { Sealed = DiskSnapshotEngine.Block.SealPolicy.Override } });
        Assert.Equal(fs.File("base.vhdx"), result.Target);
        Assert.False(File.Exists(fs.File("top.vhdx")));
        OpsKit.AssertContent(model, fs.File("base.vhdx"), "the parent after the merge");
        long sharedBytes = ReflinkFileSystem.SharedBytes(fs.File("base.vhdx"));
        Assert.True(sharedBytes >= 1 << 20, $"the parent shares only {sharedBytes} bytes with the merged child");
        if (ExternalTool.Has("qemu-img")) ExternalTool.RunChecked("qemu-img", "check", "-f", "vhdx", fs.File("base.vhdx"));
    }

    [Fact]
    public async Task No_sync_clone_has_the_kernel_copy_what_it_cannot_share_and_reads_the_same()
    {
        using var dir = new TempDirectory("kernel-copy");
        var model = Chain(dir.Path);
        foreach (var name in new[] { "fast.vhdx", "fast.vdi", "fast.raw" })
        {
            await FullClone.RunAsync(dir.File("top.vhdx"), dir.File(name), new CloneOptions { Durable = false });
            OpsKit.AssertContent(model, dir.File(name), $"the --no-sync clone {name}");
        }
        if (!ExternalTool.Has("qemu-img")) return;
        ExternalTool.RunChecked("qemu-img", "check", "-f", "vhdx", dir.File("fast.vhdx"));
        ExternalTool.RunChecked("qemu-img", "check", "-f", "vdi", dir.File("fast.vdi"));
    }

    [RequiresReflinkFact]
    public async Task Export_across_file_systems_falls_back_to_copying()
    {
        using var fs = ReflinkFileSystem.Mount(300);
        using var dir = new TempDirectory("shared-extents");
        var model = Chain(dir.Path);
        using (var chain = DiskImage.Open(dir.File("top.vhdx")))
            await RawExport.ExportToFileAsync(chain, fs.File("out.raw"));
        Assert.Equal(ContentHash.Of(model), ContentHash.OfFile(fs.File("out.raw")));
        Assert.Equal(0, ReflinkFileSystem.SharedBytes(fs.File("out.raw")));
    }
}
