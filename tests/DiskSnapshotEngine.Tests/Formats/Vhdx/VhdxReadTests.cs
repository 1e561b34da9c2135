using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Formats.Vhdx;

public class VhdxReadTests
{
    [SharedFixtureTheory]
    [InlineData("iotest-dynamic-1G.vhdx.bz2", "d3d112d8dab7fd360609f7d5a7b769904b7a2a7d7b6b8c535f65a23293c05478", 32 << 20, ImageType.Dynamic)]
    [InlineData("test-disk2vhd.vhdx.bz2", "96d964042be9b58dda1725567abfb0cf9fd8380e2118754afa979c2ad445938a", 2 << 20, ImageType.Dynamic)]
    [InlineData("fixed.vhdx.gz", "bc0be4623b15aa84216fb31ba24e3b621ec7f1c72d198c990ac0eced222d9f62", 2 << 20, ImageType.Fixed)]
    [InlineData("dynamic.vhdx.gz", "8e2b5e9265d694b42b81819e3bff29770eff4ed0f4f9f311693ff3dbdc93efac", 32 << 20, ImageType.Dynamic)]
    public void Fixture_reads_with_its_documented_content_hash(string name, string sha256, int blockSize, ImageType type)
    {
        using var dir = new TempDirectory("vhdx");
        var path = SharedFixtures.Extract(name, dir.Path);
        string before = ContentHash.OfFile(path);
        using (var chain = DiskImage.Open(path))
        {
            Assert.Equal(ImageFormat.Vhdx, chain.Top.Format);
            Assert.Equal(blockSize, chain.Top.BlockSize);
            Assert.Equal(type, chain.Top.Type);
            Assert.Equal(sha256, ContentHash.Of(chain));
            Assert.False(chain.Check().HasErrors, string.Join("\n", chain.Check().Problems));
        }
        Assert.Equal(before, ContentHash.OfFile(path));
    }

    [SharedFixtureFact]
    public void Dirty_log_fixture_is_replayed_in_memory_on_a_read_only_open_and_the_file_is_unchanged()
    {
        using var dir = new TempDirectory("vhdx");
        var path = SharedFixtures.Extract("iotest-dirtylog-10G-4M.vhdx.bz2", dir.Path);
        string before = ContentHash.OfFile(path);
        using (var chain = DiskImage.Open(path))
        {
            Assert.IsType<DiskSnapshotEngine.IO.MemoryOverlayFile>(chain.Top.File);
            Assert.Equal("179cefe8b0587f123393eedf2aa7aa8d25798591178e6bc3950a09762f38f96f", ContentHash.Of(chain));
        }
        Assert.Equal(before, ContentHash.OfFile(path));
    }

    [SharedFixtureFact]
    public void Dirty_log_fixture_is_replayed_into_the_file_on_a_read_write_open()
    {
        using var dir = new TempDirectory("vhdx");
        var path = SharedFixtures.Extract("iotest-dirtylog-10G-4M.vhdx.bz2", dir.Path);
        using (var layer = DiskImage.OpenLayer(path, writable: true)) Assert.Equal(Guid.Empty, Guid.Parse(layer.Details.First(d => d.Key == "log guid").Value));
        using var chain = DiskImage.Open(path);
        Assert.IsNotType<DiskSnapshotEngine.IO.MemoryOverlayFile>(chain.Top.File);
        Assert.Equal("179cefe8b0587f123393eedf2aa7aa8d25798591178e6bc3950a09762f38f96f", ContentHash.Of(chain));
        var (code, _, err) = ExternalTool.Run("qemu-img", "check", "-f", "vhdx", path);
        Assert.True(code == 0, err);
    }

    [RequiresToolFact("qemu-img")]
    public void Images_converted_by_qemu_img_export_byte_exactly()
    {
        using var dir = new TempDirectory("vhdx");
        var raw = dir.File("src.raw");
        MakeRawPattern(raw, 40L << 20);
        var cases = new[]
        {
            ("bs1m.vhdx", new[] { "-o", "block_size=1M" }),
            ("bs8m.vhdx", new[] { "-o", "block_size=8M" }),
            ("bs32m.vhdx", new[] { "-o", "block_size=32M" }),
            ("log4m.vhdx", new[] { "-o", "log_size=4M" }),
            ("fixed.vhdx", new[] { "-o", "subformat=fixed" }),
        };
        foreach (var (name, opts) in cases)
        {
            var vhdx = dir.File(name);
            ExternalTool.RunChecked("qemu-img", new[] { "convert", "-f", "raw", "-O", "vhdx" }.Concat(opts).Concat(new[] { raw, vhdx }).ToArray());
            using var chain = DiskImage.Open(vhdx);
            VhdxTestUtil.AssertSameAsRaw(chain, raw);
            if (name == "fixed.vhdx") Assert.Equal(ImageType.Fixed, chain.Top.Type);
        }
    }

    [RequiresToolFact("qemu-img", "qemu-io")]
    public void Image_written_by_qemu_io_reads_identically()
    {
        using var dir = new TempDirectory("vhdx");
        var vhdx = dir.File("q.vhdx");
        ExternalTool.RunChecked("qemu-img", "create", "-f", "vhdx", vhdx, "16M");
        ExternalTool.RunChecked("qemu-io", "-f", "vhdx", "-c", "write -P 0xab 1M 3M", vhdx);
        using var chain = DiskImage.Open(vhdx);
        var buf = new byte[16 << 20];
        chain.Read(0, buf);
        for (int i = 0; i < buf.Length; i++)
            Assert.True(buf[i] == (i >= (1 << 20) && i < (4 << 20) ? 0xab : 0), $"byte {i} is {buf[i]}");
    }

    [Theory]
    [InlineData(0, 0x77)] // PAYLOAD_BLOCK_NOT_PRESENT: the parent's content
    [InlineData(1, 0)]    // PAYLOAD_BLOCK_UNDEFINED: zeros, never the parent
    [InlineData(2, 0)]    // PAYLOAD_BLOCK_ZERO
    [InlineData(3, 0)]    // PAYLOAD_BLOCK_UNMAPPED
    public void Each_block_state_of_a_differencing_file_reads_as_specified(int state, int expected)
    {
        using var dir = new TempDirectory("vhdx");
        var basePath = dir.File("base.vhdx");
        using (var b = DiskImage.Create(basePath, new ImageCreateOptions(4L << 20, BlockSize: 1 << 20)))
            b.Write(0, Enumerable.Repeat((byte)0x77, 4 << 20).ToArray());
        var childPath = dir.File("child.vhdx");
        DiskImage.CreateDifferencing(childPath, basePath).Dispose();
        // The child's BAT is at 3 MiB in our layout; its block 0 gets the state under test.
        using (var f = new FileStream(childPath, FileMode.Open, FileAccess.ReadWrite))
        {
            f.Position = 3L << 20;
            f.Write(BitConverter.GetBytes((ulong)state));
        }
        using var chain = DiskImage.Open(childPath);
        var buf = new byte[2 << 20];
        chain.Read(0, buf);
        Assert.All(buf, x => Assert.Equal(expected, x));
        Assert.Equal(state == 0 ? ExtentKind.NotPresent : ExtentKind.Zero, chain.Top.GetStatus(0, 1 << 20).Kind);
        // A base image reads every unallocated state as zeros.
        using (var f = new FileStream(basePath, FileMode.Open, FileAccess.ReadWrite))
        {
            f.Position = 3L << 20;
            f.Write(BitConverter.GetBytes((ulong)state));
        }
        using var baseChain = DiskImage.Open(basePath);
        baseChain.Read(0, buf);
        Assert.All(buf.AsSpan(0, 1 << 20).ToArray(), x => Assert.Equal(0, x));
    }

    internal static void MakeRawPattern(string path, long size)
    {
        using var f = File.Create(path);
        f.SetLength(size);
        var rng = new Random(42);
        var buf = new byte[300_000];
        // Scattered data runs, some unaligned, over a sparse file.
        foreach (long off in new long[] { 0, 3_000_001, 9L << 20, (17L << 20) + 777, (33L << 20) - 5000, size - buf.Length })
        {
            rng.NextBytes(buf);
            f.Position = off;
            f.Write(buf);
        }
    }
}

/// <summary>A theory skipped, with the reason, when ../shared/fixtures is not beside the checkout.</summary>
public sealed class SharedFixtureTheoryAttribute : TheoryAttribute
{
    public SharedFixtureTheoryAttribute()
    {
        if (SharedFixtures.FixturesDirectory is null || !Directory.Exists(SharedFixtures.FixturesDirectory))
            Skip = "../shared/fixtures is not beside the checkout (set DSE_SHARED_DIR to point at shared/)";
    }
}
