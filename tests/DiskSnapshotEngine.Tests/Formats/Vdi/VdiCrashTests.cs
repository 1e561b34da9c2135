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
    private const int Blocks = 8;
    private const long Size = Blocks * (long)MiB;
    private static readonly VdiDriver s_driver = new();

    private sealed record Scenario(byte[]? ParentBytes, byte[] ChildBytes, byte[][] Old, byte[][] New);

    private static DiskChain OpenChain(Scenario s, byte[] childBytes, bool writable, out CrashSimulationFile childFile)
    {
        childFile = new CrashSimulationFile("/sim/child.vdi", childBytes);
        var layers = new List<IDiskLayer> { s_driver.Open(childFile, writable) };
        if (s.ParentBytes is not null) layers.Add(s_driver.Open(new CrashSimulationFile("/sim/parent.vdi", s.ParentBytes) { CanWrite = false }, false));
        return new DiskChain(layers);
    }

    /// <summary>The update under test: one change per block, covering every path of the layer's write code.</summary>
    private static void Update(DiskChain chain)
    {
        chain.Write(3L * MiB + 1000, RandomData.Bytes(5000, 31));          // partial write into a free block: copy-on-write + allocation
        chain.Write(4L * MiB, RandomData.Bytes(MiB, 32));                  // whole free block: allocation
        chain.Write(1L * MiB + 77, RandomData.Bytes(3000, 33));            // allocated block: in place
        chain.Write(5L * MiB, new byte[MiB]);                                // whole block of zeros: ZERO entry
        chain.WriteZeroes(6L * MiB, MiB);                                    // explicit zeroing
        var tail = new byte[MiB / 2];
        RandomData.Bytes(100, 34).CopyTo(tail, 400);
        chain.Write(7L * MiB + MiB / 2, tail);                               // mostly zeros, partial: allocation
    }

    private static Scenario Build(bool differencing)
    {
        byte[]? parentBytes = null;
        ParentDescriptor? parentDesc = null;
        if (differencing)
        {
            var pf = new CrashSimulationFile("/sim/parent.vdi");
            using (var p = s_driver.Create(pf, new ImageCreateOptions(Size, BlockSize: MiB), null))
            {
                using var pc = new DiskChain(new[] { p });
                pc.Write(0, RandomData.Bytes((int)Size, 1));
                parentDesc = ParentDescriptor.Of(p);
            }
            parentBytes = pf.CurrentContent();
        }
        var cf = new CrashSimulationFile("/sim/child.vdi");
        var options = new ImageCreateOptions(Size, differencing ? ImageType.Differencing : ImageType.Dynamic, MiB);
        var child = s_driver.Create(cf, options, parentDesc);
        var partial = new Scenario(parentBytes, Array.Empty<byte>(), Array.Empty<byte[]>(), Array.Empty<byte[]>());
        var layers = new List<IDiskLayer> { child };
        if (parentBytes is not null) layers.Add(s_driver.Open(new CrashSimulationFile("/sim/parent.vdi", parentBytes), false));
        using (var chain = new DiskChain(layers))
        {
            chain.Write(1L * MiB, RandomData.Bytes(MiB, 2));
            chain.Write(2L * MiB + 512, RandomData.Bytes(4096, 3));
        }
        var childBytes = cf.CurrentContent();
        var s = partial with { ChildBytes = childBytes };
        var old = ReadBlocks(s, childBytes);
        using (var chain = OpenChain(s, childBytes, true, out var f))
        {
            Update(chain);
            chain.Flush();
            var after = ReadBlocks(s, f.CurrentContent());
            return s with { Old = old, New = after };
        }
    }

    private static byte[][] ReadBlocks(Scenario s, byte[] childBytes)
    {
        using var chain = OpenChain(s, childBytes, false, out _);
        var blocks = new byte[Blocks][];
        for (int i = 0; i < Blocks; i++)
        {
            blocks[i] = new byte[MiB];
            chain.Read((long)i * MiB, blocks[i]);
        }
        return blocks;
    }

    private static void AssertOldOrNew(Scenario s, byte[] childBytes, string when, bool countBehindMap = false)
    {
        var blocks = ReadBlocks(s, childBytes);
        for (int i = 0; i < Blocks; i++)
            Assert.True(blocks[i].AsSpan().SequenceEqual(s.Old[i]) || blocks[i].AsSpan().SequenceEqual(s.New[i]),
                $"{when}: block {i} is neither the old nor the new content");
        using var chain = OpenChain(s, childBytes, false, out _);
        var report = chain.Check();
        Assert.True(report.Problems.All(p => p.Severity == CheckSeverity.Leak || (countBehindMap && p.Message.Contains("cBlocksAllocated"))),
            $"{when}: {string.Join("; ", report.Problems)}");

        // Writing on after the crash: a new block must not land on one the map still uses.
        using (var w = OpenChain(s, childBytes, true, out var wf))
        {
            w.Write(0, RandomData.Bytes(MiB, 99));
            w.Flush();
            var again = ReadBlocks(s, wf.CurrentContent());
            Assert.Equal(RandomData.Bytes(MiB, 99), again[0]);
            for (int i = 1; i < Blocks; i++)
                Assert.True(again[i].AsSpan().SequenceEqual(blocks[i]), $"{when}: block {i} changed after a later allocation");
        }
    }

    private static int CountWrites(Scenario s)
    {
        using var chain = OpenChain(s, s.ChildBytes, true, out var f);
        f.ResetCounters();
        Update(chain);
        return f.WriteCount;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Cut_after_every_write_leaves_old_or_new_content_and_only_leaks(bool differencing)
    {
        var s = Build(differencing);
        Assert.False(s.Old.Zip(s.New).All(p => p.First.AsSpan().SequenceEqual(p.Second)), "the update must change something");
        int writes = CountWrites(s);
        Assert.True(writes >= 8, $"only {writes} writes");
        var rng = new Random(1234);
        for (int cut = 0; cut <= writes; cut++)
        {
            var chain = OpenChain(s, s.ChildBytes, true, out var f);
            f.ResetCounters();
            f.FailAtWrite = cut;
            bool crashed = false;
            try { Update(chain); }
            catch (DiskImageException e) when (e.Kind == ErrorKind.Io) { crashed = true; }
            try { chain.Dispose(); } catch (DiskImageException) { }
            Assert.Equal(cut < writes, crashed);
            AssertOldOrNew(s, f.CurrentContent(), $"cut at write {cut}, every pending write kept");
            AssertOldOrNew(s, f.AfterPowerLoss(Array.Empty<int>()), $"cut at write {cut}, no pending write kept");
            for (int k = 0; k < 2; k++)
                AssertOldOrNew(s, f.AfterRandomPowerLoss(rng), $"cut at write {cut}, random power loss {k}");
        }
    }

    /// <summary>
    /// Power loss just before each flush barrier completes: every subset of the writes issued since the previous
    /// barrier (in issue order) may have reached the disk. This catches a missing barrier, which a cut at a write cannot.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Power_loss_at_every_flush_barrier_leaves_old_or_new_content(bool differencing)
    {
        var s = Build(differencing);
        var states = new List<(string When, byte[] Bytes)>();
        var sim = new CrashSimulationFile("/sim/child.vdi", s.ChildBytes);
        int barrier = 0;
        sim.BeforeFlush = () =>
        {
            foreach (var (kept, bytes) in sim.PowerLossStates(allSubsetsUpTo: 4, sampledSubsets: 16)) states.Add(($"barrier {barrier}, {kept}", bytes));
            barrier++;
        };
        var layers = new List<IDiskLayer> { s_driver.Open(sim, true) };
        if (s.ParentBytes is not null) layers.Add(s_driver.Open(new CrashSimulationFile("/sim/parent.vdi", s.ParentBytes), false));
        using (var chain = new DiskChain(layers)) Update(chain);
        Assert.True(barrier >= 5, $"only {barrier} flushes");
        foreach (var (when, bytes) in states) AssertOldOrNew(s, bytes, when);
    }

    [Fact]
    public void Disk_full_at_any_write_is_reported_as_DiskFull_and_leaves_a_consistent_image()
    {
        var s = Build(differencing: true);
        int writes = CountWrites(s);
        for (int at = 0; at < writes; at++)
        {
            using var chain = OpenChain(s, s.ChildBytes, true, out var f);
            f.ResetCounters();
            f.DiskFullAtWrite = at;
            var e = Assert.Throws<DiskImageException>(() => Update(chain));
            Assert.Equal(ErrorKind.DiskFull, e.Kind);
            chain.Flush();
            AssertOldOrNew(s, f.CurrentContent(), $"disk full at write {at}");
        }
    }

    /// <summary>
    /// A count below what the map uses (another writer's crash; dse's ordering never leaves it) is an error for check, as
    /// for qemu-img check, since QEMU would allocate over a used block; dse still reads it right and never writes over one.
    /// </summary>
    [Fact]
    public void A_header_count_behind_the_map_is_an_error_yet_no_later_write_lands_on_a_used_block()
    {
        var s = Build(differencing: false);
        var bytes = (byte[])s.ChildBytes.Clone();
        BitConverter.GetBytes(0u).CopyTo(bytes, 388);
        using (var chain = OpenChain(s, bytes, false, out _))
        {
            var report = chain.Check();
            Assert.Contains(report.Problems, p => p.Severity == CheckSeverity.Error && p.Message.Contains("cBlocksAllocated 0"));
        }
        AssertOldOrNew(s, bytes, "header count rolled back", countBehindMap: true);
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
