using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.Formats.Vdi;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Formats.Vdi;

/// <summary>
/// Fault injection: an update is cut after every single write (and hit by disk-full at every write); the file is then
/// materialised as a power loss could leave it (all, none, or random subsets of the unflushed writes, in any order)
/// and reopened. Every block must show its old or its new content, never a mix; check finds nothing worse than a leak;
/// and the next allocation never lands on a block that is still referenced.
/// </summary>
public sealed class VdiCrashTests
{
    private const int MiB = 64 * 1024; // the block size here: small blocks keep the many reopenings fast
    private static readonly VdiDriver s_driver = new();
    private static readonly LayerCrashKit s_kit = new(s_driver, ".vdi", Unit: MiB, Units: 8, Prepare, Update);

    private static void Prepare(DiskChain chain, int block)
    {
        chain.Write(1L * block, RandomData.Bytes(block, 2));
        chain.Write(2L * block + 512, RandomData.Bytes(4096, 3));
    }

    /// <summary>The update under test: one change per block, covering every path of the layer's write code.</summary>
    private static void Update(DiskChain chain, int block)
    {
        chain.Write(3L * block + 1000, RandomData.Bytes(5000, 31));          // partial write into a free block: copy-on-write + allocation
        chain.Write(4L * block, RandomData.Bytes(block, 32));                  // whole free block: allocation
        chain.Write(1L * block + 77, RandomData.Bytes(3000, 33));            // allocated block: in place
        chain.Write(5L * block, new byte[block]);                                // whole block of zeros: ZERO entry
        chain.WriteZeroes(6L * block, block);                                    // explicit zeroing
        var tail = new byte[block / 2];
        RandomData.Bytes(100, 34).CopyTo(tail, 400);
        chain.Write(7L * block + block / 2, tail);                               // mostly zeros, partial: allocation
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Cut_after_every_write_leaves_old_or_new_content_and_only_leaks(bool differencing)
    {
        var s = s_kit.Build(differencing);
        Assert.False(s.Old.Zip(s.New).All(p => p.First.AsSpan().SequenceEqual(p.Second)), "the update must change something");
        s_kit.CutAfterEveryWrite(s, minWrites: 8, randomLosses: 2);
    }

    /// <summary>
    /// Power loss just before each flush barrier completes: every subset of the writes issued since the previous
    /// barrier (in issue order) may have reached the disk. This catches a missing barrier, which a cut at a write cannot.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Power_loss_at_every_flush_barrier_leaves_old_or_new_content(bool differencing) =>
        s_kit.PowerLossAtEveryBarrier(s_kit.Build(differencing), minBarriers: 5, allSubsetsUpTo: 4, sampledSubsets: 16);

    [Fact]
    public void Disk_full_at_any_write_is_reported_as_DiskFull_and_leaves_a_consistent_image() =>
        s_kit.DiskFullAtAnyWrite(s_kit.Build(differencing: true));

    /// <summary>
    /// A count below what the map uses (another writer's crash; dse's ordering never leaves it) is an error for check, as
    /// for qemu-img check, since QEMU would allocate over a used block; dse still reads it right and never writes over one.
    /// </summary>
    [Fact]
    public void A_header_count_behind_the_map_is_an_error_yet_no_later_write_lands_on_a_used_block()
    {
        var s = s_kit.Build(differencing: false);
        var bytes = (byte[])s.ChildBytes.Clone();
        BitConverter.GetBytes(0u).CopyTo(bytes, 388);
        using (var chain = s_kit.OpenChain(s, bytes, false, out _))
        {
            var report = chain.Check();
            Assert.Contains(report.Problems, p => p.Severity == CheckSeverity.Error && p.Message.Contains("cBlocksAllocated 0"));
        }
        s_kit.AssertOldOrNew(s, bytes, "header count rolled back", alsoAllowed: p => p.Message.Contains("cBlocksAllocated"));
    }

    /// <summary>
    /// The issue's reproduction with the real QEMU: a dse allocation killed after each of its writes, then qemu-io
    /// allocates a new block. No cut may leave a count below the map (QEMU would put its block over a used one).
    /// </summary>
    [RequiresToolFact("qemu-io", "qemu-img")]
    public void Qemu_never_allocates_over_a_used_block_after_a_dse_allocation_is_cut_at_any_write()
    {
        using var dir = new TempDirectory("vdi-count-order");
        const int Block = 1 << 20;
        var sim = new CrashSimulationFile("/sim/d.vdi");
        using (var l = s_driver.Create(sim, new ImageCreateOptions(16L * Block, BlockSize: Block), null))
        {
            l.Write(0, Enumerable.Repeat((byte)0x11, Block).ToArray());
            l.Flush();
        }
        var before = sim.CurrentContent();
        int writes;
        {
            var f = new CrashSimulationFile("/sim/d.vdi", before);
            using (var l = s_driver.Open(f, true)) { f.ResetCounters(); l.Write(Block, Enumerable.Repeat((byte)0x22, Block).ToArray()); writes = f.WriteCount; }
        }
        Assert.True(writes >= 3, $"only {writes} writes");
        for (int cut = 0; cut <= writes; cut++)
        {
            var f = new CrashSimulationFile("/sim/d.vdi", before);
            var l = s_driver.Open(f, true);
            f.ResetCounters();
            f.FailAtWrite = cut;
            try { l.Write(Block, Enumerable.Repeat((byte)0x22, Block).ToArray()); } catch (DiskImageException) { }
            try { l.Dispose(); } catch (DiskImageException) { }
            string path = dir.File($"cut{cut}.vdi");
            File.WriteAllBytes(path, f.CurrentContent());
            bool second;
            using (var r = DiskImage.OpenLayer(path, writable: false))
            {
                Assert.False(r.Check().HasErrors, $"cut at write {cut}: {string.Join("; ", r.Check().Problems)}");
                var b = new byte[Block];
                new DiskChain(new[] { r }).Read(Block, b);
                second = b.All(x => x == 0x22);
                Assert.True(second || b.All(x => x == 0), $"cut at write {cut}: block 1 is neither old nor new");
            }
            ExternalTool.RunChecked("qemu-io", "-f", "vdi", "-c", $"write -P 0xcc {8 * Block} {Block}", path);
            using var chain = DiskImage.Open(path);
            var check = new byte[Block];
            chain.Read(0, check);
            Assert.True(check.All(x => x == 0x11), $"cut at write {cut}: QEMU's new block overwrote block 0");
            chain.Read(Block, check);
            Assert.True(check.All(x => x == (second ? 0x22 : 0)), $"cut at write {cut}: QEMU's new block overwrote block 1");
            chain.Read(8L * Block, check);
            Assert.True(check.All(x => x == 0xcc), $"cut at write {cut}: QEMU's write is missing");
        }
    }
}
