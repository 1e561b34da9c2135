using System.Text.Json;
using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Formats.Vhdx;
using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;
using DiskSnapshotEngine.Tests.Operations;

namespace DiskSnapshotEngine.Tests.Formats.Vhdx;

/// <summary>
/// <c>dse resize</c> of a VHDX past its BAT region's room: the BAT moves to a larger region at the end of the file, in
/// place and in one log entry with the region tables and the size; identity and DataWriteGuid kept, so children
/// elsewhere still open. The disks are too large to read whole: a head window (the old disk plus a margin) and a tail
/// window are compared with a model, and no extent between them may hold data.
/// </summary>
public class VhdxBatGrowthTests
{
    private const long Size = 128L << 20;       // four 32 MiB blocks
    private const int BaseBlock = 32 << 20;
    private const long BaseGrown = 5L << 40;    // 32 MiB blocks: the 1 MiB BAT region holds 131072 entries, about 4 TiB
    private const long ChildGrown = 300L << 30; // a child's 2 MiB blocks (dse's default): the region holds about 252 GiB
    private const int Window = 64 << 20;

    private sealed class Model(long size)
    {
        public long Size { get; } = size;
        public byte[] Head { get; } = new byte[VhdxBatGrowthTests.Size + Window];
        public byte[] Tail { get; } = new byte[Window];

        public Model(long size, byte[] head) : this(size) => head.CopyTo(Head, 0);
    }

    private static byte[] DataInFirstBlocks(string image, int seed, byte[]? under = null)
    {
        var model = under is null ? new byte[Size] : (byte[])under.Clone();
        using var chain = DiskImage.Open(image, OpenOptions.ReadWrite);
        var rng = new Random(seed);
        foreach (var (at, length) in new[] { (0L, 3 << 20), ((long)BaseBlock - 4096, 1 << 20), (70L << 20, 300_000) })
        {
            var data = RandomData.Bytes(length, seed + (int)(at >> 20));
            chain.Write(at, data);
            data.CopyTo(model, at);
        }
        OpsKit.RandomWrite(chain, rng, model);
        chain.Flush();
        return model;
    }

    private static ImageIdentity IdentityOf(string image)
    {
        using var l = DiskImage.OpenLayer(image, false);
        return l.Identity;
    }

    private static VhdxRegionTableEntry BatOf(string image)
    {
        using var l = (VhdxLayer)DiskImage.OpenLayer(image, false);
        return l.BatRegion;
    }

    private static void AssertShows(string image, Model m)
    {
        using var chain = DiskImage.Open(image);
        Assert.Equal(m.Size, chain.VirtualSize);
        var head = new byte[m.Head.Length];
        chain.Read(0, head);
        Assert.Equal(-1, OpsKit.FirstDifference(m.Head, head));
        var tail = new byte[Window];
        chain.Read(m.Size - Window, tail);
        Assert.Equal(-1, OpsKit.FirstDifference(m.Tail, tail));
        Assert.DoesNotContain(chain.GetExtents(m.Head.Length, m.Size - Window - m.Head.Length), e => e.Kind == ExtentKind.Data);
        Assert.False(chain.Check().HasErrors, string.Join("; ", chain.Check().Problems));
    }

    /// <summary>Grows through the CLI: in place, the BAT region moved and larger, identity and version kept, the content kept.</summary>
    private static async Task GrowAsync(string image, Model m)
    {
        var before = IdentityOf(image);
        var bat = BatOf(image);
        var r = await CliRunner.RunAsync("resize", image, "--size", m.Size.ToString(), "--json");
        Assert.True(r.ExitCode == 0, r.ToString());
        using (var doc = JsonDocument.Parse(r.StdOut)) Assert.True(doc.RootElement.GetProperty("inPlace").GetBoolean());
        var moved = BatOf(image);
        Assert.True(moved.FileOffset > bat.FileOffset && moved.Length > bat.Length, $"BAT {bat} -> {moved}");
        Assert.Equal(0, moved.FileOffset % (1 << 20));
        Assert.Equal(before, IdentityOf(image));
        AssertShows(image, m);
        var check = await CliRunner.RunAsync("check", image);
        Assert.True(check.ExitCode == 0, check.ToString());
    }

    /// <summary>Random writes in both windows after the growth, mirrored in the model, then read back after a reopen.</summary>
    private static void RandomWritesAfter(string image, Model m, int seed)
    {
        var rng = new Random(seed);
        using (var chain = DiskImage.Open(image, OpenOptions.ReadWrite))
        {
            for (int i = 0; i < 40; i++)
            {
                bool tail = rng.Next(2) == 0;
                var window = tail ? m.Tail : m.Head;
                int length = rng.Next(1, 1 << 20);
                int at = rng.Next(window.Length - length);
                var data = RandomData.Bytes(length, seed * 1000 + i);
                chain.Write((tail ? m.Size - Window : 0) + at, data);
                data.CopyTo(window, at);
            }
            chain.Flush();
        }
        AssertShows(image, m);
    }

    // qemu's vhdx driver has no block status, so a compare over terabytes reads them all: qemu reads the two windows
    // of the grown image (its raw driver's offset and size over the vhdx node) and compares them with the model.
    internal static string QemuWindow(string vhdx, long offset, long length) =>
        "json:" + JsonSerializer.Serialize(new
        {
            driver = "raw", offset, size = length,
            file = new { driver = "vhdx", file = new { driver = "file", filename = vhdx } },
        });

    private static void QemuCompare(string dir, string image, Model m)
    {
        foreach (var (name, window, at) in new[] { ("head.raw", m.Head, 0L), ("tail.raw", m.Tail, m.Size - Window) })
        {
            File.WriteAllBytes(Path.Combine(dir, name), window);
            var cmp = ExternalTool.Run("qemu-img", "compare", "-f", "raw", Path.Combine(dir, name), QemuWindow(image, at, window.Length));
            Assert.True(cmp.ExitCode == 0, $"{name}: {cmp.StdOut}{cmp.StdErr}");
        }
    }

    private static long QemuVirtualSize(string path)
    {
        using var doc = JsonDocument.Parse(ExternalTool.RunChecked("qemu-img", "info", "--output=json", path));
        return doc.RootElement.GetProperty("virtual-size").GetInt64();
    }

    [RequiresToolFact("qemu-img", "vhdiinfo")]
    public async Task A_32MiB_block_dynamic_image_grows_past_its_BAT_room_in_place_and_its_child_still_reads()
    {
        using var dir = new TempDirectory("batgrow-base");
        Directory.CreateDirectory(dir.File("b"));
        Directory.CreateDirectory(dir.File("c"));
        string img = dir.File("b/disk.vhdx"), original = dir.File("original.vhdx"), child = dir.File("c/child.vhdx");
        OpsKit.CreateBase(img, Size, BaseBlock);
        var model = new Model(BaseGrown, DataInFirstBlocks(img, 7));
        File.Copy(img, original);
        // A child in another folder (resize does not see it) that reads through the base: it must still open after.
        OpsKit.CreateChild(child, img);
        var childModel = DataInFirstBlocks(child, 8, model.Head.AsSpan(0, (int)Size).ToArray());

        await GrowAsync(img, model);

        Assert.Equal(BaseGrown, QemuVirtualSize(img));
        ExternalTool.RunChecked("qemu-img", "check", img);
        var cmp = ExternalTool.Run("qemu-img", "compare", original, QemuWindow(img, 0, Size));
        Assert.True(cmp.ExitCode == 0, cmp.StdOut + cmp.StdErr);
        QemuCompare(dir.Path, img, model);
        Assert.Contains($"({BaseGrown} bytes)", ExternalTool.RunChecked("vhdiinfo", img));
        OpsKit.AssertContent(childModel, child, "the child of the grown base");

        RandomWritesAfter(img, model, 9);
        ExternalTool.RunChecked("qemu-img", "check", img);
        QemuCompare(dir.Path, img, model);
    }

    /// <summary>qemu does not open a differencing VHDX ("Operation not supported"): dse and libvhdi check the child.</summary>
    [RequiresToolFact("vhdiinfo")]
    public async Task A_differencing_image_grows_past_its_BAT_room_in_place_and_its_own_child_still_reads()
    {
        using var dir = new TempDirectory("batgrow-child");
        Directory.CreateDirectory(dir.File("g"));
        string parent = dir.File("parent.vhdx"), child = dir.File("child.vhdx"), grandchild = dir.File("g/grandchild.vhdx");
        OpsKit.CreateBase(parent, Size, BaseBlock);
        var parentModel = DataInFirstBlocks(parent, 11);
        OpsKit.CreateChild(child, parent);
        var model = new Model(ChildGrown, DataInFirstBlocks(child, 12, parentModel));
        OpsKit.CreateChild(grandchild, child);
        var grandModel = DataInFirstBlocks(grandchild, 13, model.Head.AsSpan(0, (int)Size).ToArray());
        var parentBytes = File.ReadAllBytes(parent);

        await GrowAsync(child, model);

        Assert.Equal(parentBytes, File.ReadAllBytes(parent));
        Assert.Contains($"({ChildGrown} bytes)", ExternalTool.RunChecked("vhdiinfo", child));
        OpsKit.AssertContent(grandModel, grandchild, "the child of the grown differencing image");
        RandomWritesAfter(child, model, 14);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Growth_past_the_BAT_room_killed_at_any_write_keeps_the_old_or_the_new_image(bool differencing)
    {
        using var dir = new TempDirectory("batgrow-cut");
        string master = dir.File("master.vhdx"), img = dir.File("disk.vhdx");
        const long small = 6L << 20;
        byte[] model = new byte[small];
        if (differencing)
        {
            OpsKit.CreateBase(dir.File("parent.vhdx"), small, 1 << 20);
            OpsKit.RandomWrites(dir.File("parent.vhdx"), new Random(21), 4, model);
            OpsKit.CreateChild(master, dir.File("parent.vhdx"));
        }
        else OpsKit.CreateBase(master, small, 1 << 20);
        OpsKit.RandomWrites(master, new Random(22), 6, model);
        // 1 MiB blocks: the 1 MiB region holds the entries of about 128 GiB; a child's 2 MiB blocks about 252 GiB.
        long grown = differencing ? ChildGrown : 130L << 30;
        bool completed = false;
        int n = 0;
        for (; !completed; n++)
        {
            Assert.True(n < 60, "resize never completed");
            File.Copy(master, img, overwrite: true);
            completed = await OpsKit.ResizeCutAtAsync(img, model, small, grown, n);
        }
        Assert.True(n > 5, $"the resize made only {n} writes");
        Assert.NotEqual(BatOf(master).FileOffset, BatOf(img).FileOffset);
    }

    /// <summary>
    /// The same growth at the layer, cut at every write and then every power-loss outcome (durable bytes plus subsets of
    /// the unflushed writes), each opened read-only (log replayed in memory) and read-write: the old size and content or
    /// the new, identity and version kept, structures sound.
    /// </summary>
    [Fact]
    public void Growth_past_the_BAT_room_is_all_or_nothing_under_power_loss()
    {
        using var dir = new TempDirectory("batgrow-power");
        string path = dir.File("disk.vhdx");
        const long small = 6L << 20, grown = 130L << 30;
        var model = new byte[small];
        OpsKit.CreateBase(path, small, 1 << 20);
        OpsKit.RandomWrites(path, new Random(31), 6, model);
        var identity = IdentityOf(path);
        var materialised = dir.File("after-crash.vhdx");
        bool sawOld = false, sawNew = false;
        VhdxTestUtil.EveryCut(path, File.ReadAllBytes(path), materialised, uncounted: null,
            session: layer =>
            {
                Assert.True(layer.TryResizeInPlace(grown));
                layer.Dispose();
            },
            randomOutcomes: 4,
            check: (k, writable) =>
            {
                using var chain = DiskImage.Open(materialised, new OpenOptions { Writable = writable });
                Assert.True(chain.VirtualSize is small or grown, $"cut {k}: size {chain.VirtualSize}");
                sawOld |= chain.VirtualSize == small;
                sawNew |= chain.VirtualSize == grown;
                Assert.Equal(identity, chain.Top.Identity);
                var head = new byte[Math.Min(chain.VirtualSize, small + (1 << 20))];
                chain.Read(0, head);
                var expected = new byte[head.Length];
                model.CopyTo(expected, 0);
                Assert.Equal(-1, OpsKit.FirstDifference(expected, head));
                if (chain.VirtualSize > head.Length)
                    Assert.DoesNotContain(chain.GetExtents(head.Length, chain.VirtualSize - head.Length), e => e.Kind == ExtentKind.Data);
                var report = chain.Check();
                Assert.False(report.HasErrors, $"cut {k}, writable={writable}: {string.Join("; ", report.Problems)}");
            });
        Assert.True(sawOld && sawNew, "the cuts never showed both the old and the new size");
    }

    /// <summary>
    /// The real images (Windows, Disk2VHD, qemu with a dirty log: ../shared/fixtures) grown past their BAT room by the
    /// CLI: qemu-img checks them and reads the old range (through a window) with the content hash the README documents;
    /// libvhdi reads the new size; dse's check is clean but for the old BAT MiB it lists as a leak.
    /// </summary>
    [SharedFixtureTheory]
    [InlineData("iotest-dynamic-1G.vhdx.bz2", 1L << 30, BaseGrown, "d3d112d8dab7fd360609f7d5a7b769904b7a2a7d7b6b8c535f65a23293c05478")]
    [InlineData("dynamic.vhdx.gz", 10L << 20, BaseGrown, "8e2b5e9265d694b42b81819e3bff29770eff4ed0f4f9f311693ff3dbdc93efac")]
    [InlineData("test-disk2vhd.vhdx.bz2", 256L << 20, ChildGrown, "96d964042be9b58dda1725567abfb0cf9fd8380e2118754afa979c2ad445938a")]
    [InlineData("iotest-dirtylog-10G-4M.vhdx.bz2", 10L << 30, 200L << 30, null)] // 18 MiB of 0xa5 after the log's replay
    public async Task A_real_image_grows_past_its_BAT_room(string name, long oldSize, long grown, string? sha256)
    {
        using var dir = new TempDirectory("batgrow-fixture");
        string img = SharedFixtures.Extract(name, dir.Path);
        var bat = BatOf(img);
        var r = await CliRunner.RunAsync("resize", img, "--size", grown.ToString(), "--json");
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.True(BatOf(img).FileOffset > bat.FileOffset, "the BAT did not move");
        ExternalTool.RunChecked("qemu-img", "check", img);
        Assert.Equal(grown, QemuVirtualSize(img));
        Assert.Contains($"({grown} bytes)", ExternalTool.RunChecked("vhdiinfo", img));
        string raw = dir.File("old-range.raw");
        long window = sha256 is null ? 32L << 20 : oldSize;
        ExternalTool.RunChecked("qemu-img", "convert", "-O", "raw", QemuWindow(img, 0, window), raw);
        if (sha256 is not null) Assert.Equal(sha256, ContentHash.OfFile(raw));
        else
        {
            var head = File.ReadAllBytes(raw);
            Assert.True(head.AsSpan(0, 18 << 20).IndexOfAnyExcept((byte)0xa5) < 0 && head.AsSpan(18 << 20).IndexOfAnyExcept((byte)0) < 0);
        }
        using var chain = DiskImage.Open(img);
        // The old last block, when partial, is allocated past the old end: that tail was zeroed before it became visible.
        long blockEnd = (oldSize + chain.Top.BlockSize - 1) / chain.Top.BlockSize * chain.Top.BlockSize;
        var tail = new byte[blockEnd - oldSize];
        chain.Read(oldSize, tail);
        Assert.True(tail.AsSpan().IndexOfAnyExcept((byte)0) < 0, "the old last block's tail is not zero");
        Assert.DoesNotContain(chain.GetExtents(blockEnd, grown - blockEnd), e => e.Kind == ExtentKind.Data);
        Assert.False(chain.Check().HasErrors, string.Join("; ", chain.Check().Problems));
    }
}
