using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.Formats.Vhd;
using DiskSnapshotEngine.IO;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Formats.Vhd;

/// <summary>
/// Fault injection: an update is cut after every single write (and hit by disk-full at every write, and by a power loss
/// at every flush barrier); the file is materialised as a power loss could leave it and reopened. Every block shows its
/// old or its new content, never a mix; the file still ends with a valid footer; check finds nothing worse than a leak;
/// and the next allocation never lands on a block that is still referenced.
/// </summary>
public sealed class VhdCrashTests
{
    private const int Unit = 64 * 1024; // the block size here: small blocks keep the many reopenings fast
    private const int Blocks = 8;
    private const long Size = Blocks * (long)Unit;
    private static readonly VhdDriver s_driver = new();

    private sealed record Scenario(byte[]? ParentBytes, byte[] ChildBytes, byte[][] Old, byte[][] New);

    private static DiskChain OpenChain(Scenario s, IImageFile child, bool writable)
    {
        var layers = new List<IDiskLayer> { s_driver.Open(child, writable) };
        if (s.ParentBytes is not null) layers.Add(s_driver.Open(new CrashSimulationFile("/sim/parent.vhd", s.ParentBytes) { CanWrite = false }, false));
        return new DiskChain(layers);
    }

    private static DiskChain OpenChain(Scenario s, byte[] childBytes, bool writable, out CrashSimulationFile childFile) =>
        OpenChain(s, childFile = new CrashSimulationFile("/sim/child.vhd", childBytes), writable);

    /// <summary>The update under test: one change per block, covering every path of the layer's write code.</summary>
    private static void Update(DiskChain chain)
    {
        chain.Write(3L * Unit + 1000, RandomData.Bytes(5000, 31));   // partial write into an unallocated block
        chain.Write(4L * Unit, RandomData.Bytes(Unit, 32));           // a whole unallocated block
        chain.Write(1L * Unit + 77, RandomData.Bytes(3000, 33));      // an allocated block, sectors present: in place
        chain.Write(2L * Unit + 40000, RandomData.Bytes(9000, 34));   // an allocated block, sectors not all present
        chain.Write(5L * Unit, new byte[Unit]);                         // a whole block of zeros
        chain.WriteZeroes(6L * Unit, Unit);                             // explicit zeroing
        var tail = new byte[Unit / 2];
        RandomData.Bytes(100, 35).CopyTo(tail, 400);
        chain.Write(7L * Unit + Unit / 2, tail);                        // mostly zeros, partial: allocation
        if (chain.Layers.Count > 1) chain.Top.SetParent(ParentDescriptor.Of(chain.Layers[1])); // relink: new locators, one header write
    }

    private static Scenario Build(bool differencing)
    {
        byte[]? parentBytes = null;
        ParentDescriptor? parentDesc = null;
        if (differencing)
        {
            var pf = new CrashSimulationFile("/sim/parent.vhd");
            using (var p = s_driver.Create(pf, new ImageCreateOptions(Size, BlockSize: Unit), null))
            {
                using var pc = new DiskChain(new[] { p });
                pc.Write(0, RandomData.Bytes((int)Size, 1));
                parentDesc = ParentDescriptor.Of(p);
            }
            parentBytes = pf.CurrentContent();
        }
        var cf = new CrashSimulationFile("/sim/child.vhd");
        var child = s_driver.Create(cf, new ImageCreateOptions(Size, differencing ? ImageType.Differencing : ImageType.Dynamic, Unit), parentDesc);
        var s = new Scenario(parentBytes, Array.Empty<byte>(), Array.Empty<byte[]>(), Array.Empty<byte[]>());
        var layers = new List<IDiskLayer> { child };
        if (parentBytes is not null) layers.Add(s_driver.Open(new CrashSimulationFile("/sim/parent.vhd", parentBytes), false));
        using (var chain = new DiskChain(layers))
        {
            chain.Write(1L * Unit, RandomData.Bytes(Unit, 2));
            chain.Write(2L * Unit + 512, RandomData.Bytes(4096, 3));
        }
        s = s with { ChildBytes = cf.CurrentContent() };
        var old = ReadBlocks(s, s.ChildBytes);
        using var updated = OpenChain(s, s.ChildBytes, true, out var f);
        Update(updated);
        updated.Flush();
        return s with { Old = old, New = ReadBlocks(s, f.CurrentContent()) };
    }

    private static byte[][] ReadBlocks(Scenario s, byte[] childBytes)
    {
        using var chain = OpenChain(s, childBytes, false, out _);
        var blocks = new byte[Blocks][];
        for (int i = 0; i < Blocks; i++)
        {
            blocks[i] = new byte[Unit];
            chain.Read((long)i * Unit, blocks[i]);
        }
        return blocks;
    }

    private static void AssertOldOrNew(Scenario s, byte[] childBytes, string when)
    {
        Assert.True(VhdFooter.HasCookie(childBytes.AsSpan(childBytes.Length - 512)), $"{when}: the file does not end with a footer");
        var blocks = ReadBlocks(s, childBytes);
        for (int i = 0; i < Blocks; i++)
            Assert.True(blocks[i].AsSpan().SequenceEqual(s.Old[i]) || blocks[i].AsSpan().SequenceEqual(s.New[i]),
                $"{when}: block {i} is neither the old nor the new content");
        using (var chain = OpenChain(s, childBytes, false, out _))
        {
            var report = chain.Check();
            Assert.True(report.Problems.All(p => p.Severity == CheckSeverity.Leak), $"{when}: {string.Join("; ", report.Problems)}");
        }

        // Writing on after the crash: a new block must not land on one the BAT still uses.
        using var w = OpenChain(s, childBytes, true, out var wf);
        w.Write(0, RandomData.Bytes(Unit, 99));
        w.Flush();
        var again = ReadBlocks(s, wf.CurrentContent());
        Assert.Equal(RandomData.Bytes(Unit, 99), again[0]);
        for (int i = 1; i < Blocks; i++)
            Assert.True(again[i].AsSpan().SequenceEqual(blocks[i]), $"{when}: block {i} changed after a later allocation");
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
        Assert.True(writes >= 12, $"only {writes} writes");
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

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Power_loss_at_every_flush_barrier_leaves_old_or_new_content(bool differencing)
    {
        var s = Build(differencing);
        var states = new List<(string When, byte[] Bytes)>();
        var sim = new CrashSimulationFile("/sim/child.vhd", s.ChildBytes);
        int barrier = 0;
        var observed = new FlushObservingFile(sim, () => states.AddRange(FlushObservingFile.PowerLossStates(sim, barrier++)));
        using (var chain = OpenChain(s, observed, true)) Update(chain);
        Assert.True(barrier >= 6, $"only {barrier} flushes");
        foreach (var (when, bytes) in states) AssertOldOrNew(s, bytes, when);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Disk_full_at_any_write_is_reported_as_DiskFull_and_leaves_a_consistent_image(bool differencing)
    {
        var s = Build(differencing);
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
}
