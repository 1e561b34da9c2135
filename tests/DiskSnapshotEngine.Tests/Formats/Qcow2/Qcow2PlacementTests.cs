using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.Operations;
using DiskSnapshotEngine.Tests.Infrastructure;
using DiskSnapshotEngine.Tests.Operations;
using static DiskSnapshotEngine.Tests.Formats.Qcow2.Qcow2TestKit;

namespace DiskSnapshotEngine.Tests.Formats.Qcow2;

/// <summary>
/// qcow2 as a target of shared extents (IPlaceableLayer): runs of clusters placed in one allocation, their mapping
/// published only once their data is in, and clones that share or kernel-copy their data and still pass qemu-img.
/// </summary>
public sealed class Qcow2PlacementTests
{
    private const long Size = 64L * MiB;

    private static IPlaceableLayer Placeable(DiskChain chain) => (IPlaceableLayer)chain.Top;

    [Fact]
    public void A_fresh_base_places_a_multi_cluster_run_in_contiguous_clusters_and_maps_it_once_filled()
    {
        using var dir = new TempDirectory("qcow2-place");
        string q = dir.File("base.qcow2");
        var model = new byte[Size];
        var data = RandomData.Bytes(3 * MiB, 7);
        using (var chain = new DiskChain(new[] { DiskImage.Create(q, new ImageCreateOptions(Size)) }))
        {
            // 3 MiB from 1 MiB + 4 KiB: the first cluster in part, then whole ones, the last in part (a base image's
            // fresh clusters read as zeros, which is what the rest of them shows).
            long at = MiB + 4 * KiB;
            // Runs start at one cluster and double with each placement the caller filled: 1+2+4+8+16+32 clusters.
            int calls = PlaceAll(chain, at, data, out long fileOffset);
            Assert.Equal(6, calls);
            Assert.Equal(4 * KiB, fileOffset % (64 * KiB));
            data.CopyTo(model, at);
            // Published by the next access: one data extent whose file offsets follow each other.
            var extents = chain.GetExtents(0, Size).Where(e => e.Kind == ExtentKind.Data).ToList();
            Assert.Single(extents);
            Assert.Equal(MiB, extents[0].Offset);
            Assert.Equal(fileOffset - 4 * KiB, extents[0].FileOffset);
            chain.Flush();
        }
        AssertReadsModel(model, q, "the placed run");
    }

    [Fact]
    public void A_child_refuses_part_of_a_cluster_that_shows_its_backing_file_and_places_whole_ones()
    {
        using var dir = new TempDirectory("qcow2-place");
        string b = dir.File("base.qcow2"), c = dir.File("child.qcow2");
        OpsKit.CreateBase(b, Size);
        var rng = new Random(5);
        var model = new byte[Size];
        OpsKit.RandomWrites(b, rng, 10, model);
        OpsKit.CreateChild(c, b);
        using (var chain = DiskImage.Open(c, OpenOptions.ReadWrite))
        {
            var p = Placeable(chain);
            Assert.False(p.TryPlace(4 * KiB, 64 * KiB, out _, out _));
            Assert.False(p.TryPlace(2 * MiB, 60 * KiB, out _, out _));
            // Whole clusters, but the range ends inside one: only the whole ones are placed.
            var data = RandomData.Bytes(2 * MiB, 9);
            PlaceAll(chain, 2 * MiB, data, out _);
            Assert.False(p.TryPlace(4 * MiB, 4 * KiB, out _, out _));
            data.CopyTo(model, 2 * MiB);
            chain.Flush();
        }
        AssertReadsModel(model, c, "the child after a placed run");
    }

    [Fact]
    public void A_placed_run_is_not_mapped_on_disk_before_the_next_placement_or_flush()
    {
        using var dir = new TempDirectory("qcow2-place");
        string q = dir.File("base.qcow2");
        OpsKit.CreateBase(q, Size);
        long before = new FileInfo(q).Length;
        var chain = DiskImage.Open(q, OpenOptions.ReadWrite);
        var layer = chain.Top;
        try
        {
            Assert.True(((IPlaceableLayer)layer).TryPlace(0, 8 * MiB, out long fileOffset, out long placed));
            Assert.Equal(64 * KiB, placed);
            Assert.True(fileOffset >= before);
            // Unfilled and unpublished: the file names none of it (a crash here leaks the run at worst).
            Assert.Equal(0, QemuMappedData(q));
            layer.File.Write(RandomData.Bytes((int)placed, 3), fileOffset);
            layer.Flush();
            Assert.Equal(64 * KiB, QemuMappedData(q));
        }
        finally
        {
            chain.Dispose();
        }
        AssertQemuCheckClean(q);
    }

    // Places and fills `data` at `offset` run by run, as a shared-extent copy does; returns the TryPlace calls and
    // the file offset of the first byte.
    private static int PlaceAll(DiskChain chain, long offset, byte[] data, out long firstFileOffset)
    {
        firstFileOffset = -1;
        int calls = 0;
        for (int done = 0; done < data.Length; calls++)
        {
            Assert.True(Placeable(chain).TryPlace(offset + done, data.Length - done, out long at, out long placed));
            if (firstFileOffset < 0) firstFileOffset = at;
            chain.Top.File.Write(data.AsSpan(done, (int)placed), at);
            done += (int)placed;
        }
        return calls;
    }

    // Bytes qemu-img map reports as data (the image is opened by qemu while we hold it: -U).
    private static long QemuMappedData(string image)
    {
        using var doc = System.Text.Json.JsonDocument.Parse(QemuImg("map", "-U", "--output=json", image));
        return doc.RootElement.EnumerateArray().Where(e => e.GetProperty("data").GetBoolean()).Sum(e => e.GetProperty("length").GetInt64());
    }

    [Fact]
    public void Sequential_writes_into_a_fresh_image_land_in_one_contiguous_run()
    {
        using var dir = new TempDirectory("qcow2-place");
        string q = dir.File("base.qcow2");
        var data = RandomData.Bytes(12 * MiB, 11);
        using (var chain = new DiskChain(new[] { DiskImage.Create(q, new ImageCreateOptions(Size)) }))
        {
            for (int at = 0; at < data.Length; at += 4 * MiB) chain.Write(at, data.AsSpan(at, 4 * MiB));
            chain.Flush();
        }
        using var reopened = DiskImage.Open(q);
        // The L2 table is taken before the first data cluster, so no table lands between the data clusters.
        var extents = reopened.GetExtents(0, Size).Where(e => e.Kind == ExtentKind.Data).ToList();
        Assert.Single(extents);
        Assert.Equal(data.Length, extents[0].Length);
    }

    [Fact]
    public async Task No_sync_clones_to_qcow2_have_the_kernel_copy_into_placed_runs_and_pass_qemu_img()
    {
        using var dir = new TempDirectory("qcow2-place");
        var model = Chain(dir.Path, ".qcow2", 21);
        foreach (var (source, name) in new[] { ("top.qcow2", "fast.qcow2"), ("top.qcow2", "durable.qcow2") })
        {
            await FullClone.RunAsync(dir.File(source), dir.File(name), new CloneOptions { Durable = name != "durable.qcow2" });
            AssertReadsModel(model, dir.File(name), $"the clone {name}");
        }
    }

    [RequiresReflinkFact]
    public async Task Qcow2_clone_on_xfs_places_clusters_on_shared_extents_and_passes_qemu_img()
    {
        using var fs = ReflinkFileSystem.Mount(400);
        foreach (var ext in new[] { ".qcow2", ".vhdx" })
        {
            string sub = Path.Combine(fs.Path, ext.TrimStart('.'));
            Directory.CreateDirectory(sub);
            var model = Chain(sub, ext, ext.Length);
            string clone = Path.Combine(sub, "clone.qcow2");
            await FullClone.RunAsync(Path.Combine(sub, "top" + ext), clone);
            AssertReadsModel(model, clone, $"the qcow2 clone of a {ext} chain");
            long sharedBytes = ReflinkFileSystem.SharedBytes(clone);
            Assert.True(sharedBytes >= 4 * MiB, $"the clone of the {ext} chain shares only {sharedBytes} bytes with it");
        }
    }

    // dse reads the model, and so does qemu (where installed), which also finds the image clean.
    private static void AssertReadsModel(byte[] model, string image, string because)
    {
        OpsKit.AssertContent(model, image, because);
        if (!ExternalTool.Has("qemu-img")) return;
        AssertQemuCheckClean(image);
        AssertQemuReadsModel(image, model);
    }

    // A two-layer chain with data in both (random writes of random lengths, so some extents are unaligned).
    private static byte[] Chain(string dir, string ext, int seed)
    {
        var rng = new Random(seed);
        var model = new byte[Size];
        OpsKit.CreateBase(Path.Combine(dir, "base" + ext), Size, blockSize: ext == ".vhdx" ? MiB : null);
        OpsKit.RandomWrites(Path.Combine(dir, "base" + ext), rng, 12, model);
        OpsKit.CreateChild(Path.Combine(dir, "top" + ext), Path.Combine(dir, "base" + ext));
        OpsKit.RandomWrites(Path.Combine(dir, "top" + ext), rng, 12, model);
        return model;
    }
}
