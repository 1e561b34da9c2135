using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.Formats.Qcow2;
using DiskSnapshotEngine.Tests.Infrastructure;
using static DiskSnapshotEngine.Tests.Formats.Qcow2.Qcow2TestKit;

namespace DiskSnapshotEngine.Tests.Formats.Qcow2;

/// <summary>
/// Fault injection: a qcow2 update is cut after every single write, and the file materialised as a power loss could
/// leave it (all, none or random subsets of the unflushed writes). Every cluster shows its old or its new content,
/// check finds nothing worse than a leak, and a later allocation never lands on a cluster still in use.
/// </summary>
public sealed class Qcow2CrashTests
{
    private const int Cluster = 64 * KiB;
    private const int Clusters = 11;
    private const long Size = Clusters * (long)Cluster;
    private static readonly Qcow2Driver s_driver = new();

    private sealed record Scenario(byte[]? ParentBytes, byte[] ChildBytes, byte[][] Old, byte[][] New);

    private static DiskChain OpenChain(Scenario s, byte[] childBytes, bool writable, out CrashSimulationFile childFile)
    {
        childFile = new CrashSimulationFile("/sim/child.qcow2", childBytes);
        var layers = new List<IDiskLayer> { s_driver.Open(childFile, writable) };
        if (s.ParentBytes is not null) layers.Add(s_driver.Open(new CrashSimulationFile("/sim/parent.qcow2", s.ParentBytes) { CanWrite = false }, false));
        return new DiskChain(layers);
    }

    /// <summary>One change per cluster, covering every path of the write code.</summary>
    private static void Update(DiskChain chain)
    {
        chain.Write(3L * Cluster + 1000, RandomData.Bytes(5000, 31));        // partial write into an unallocated cluster: copy-on-write + allocation
        chain.Write(4L * Cluster, RandomData.Bytes(Cluster, 32));            // whole unallocated cluster
        chain.Write(1L * Cluster + 77, RandomData.Bytes(3000, 33));          // allocated cluster: in place
        chain.Write(5L * Cluster, new byte[Cluster]);               // whole cluster of zeros: zero flag, no data
        chain.WriteZeroes(6L * Cluster, Cluster);                   // zeroing an allocated cluster frees it
        chain.WriteZeroes(8L * Cluster, Cluster);                   // zeroing an unallocated one
        var tail = new byte[Cluster / 2];
        RandomData.Bytes(100, 34).CopyTo(tail, 400);
        chain.Write(7L * Cluster + Cluster / 2, tail);              // partial, mostly zeros: allocation
        chain.Write(10L * Cluster - 10, RandomData.Bytes(20, 35));           // crossing into the last cluster
    }

    private static Scenario Build(bool differencing)
    {
        byte[]? parentBytes = null;
        ParentDescriptor? parentDesc = null;
        if (differencing)
        {
            var pf = new CrashSimulationFile("/sim/parent.qcow2");
            using (var p = s_driver.Create(pf, new ImageCreateOptions(Size), null))
            {
                using var pc = new DiskChain(new[] { p });
                pc.Write(0, RandomData.Bytes((int)Size, 1));
                parentDesc = ParentDescriptor.Of(p);
            }
            parentBytes = pf.CurrentContent();
        }
        var cf = new CrashSimulationFile("/sim/child.qcow2");
        var options = new ImageCreateOptions(Size, differencing ? ImageType.Differencing : ImageType.Dynamic);
        var partial = new Scenario(parentBytes, Array.Empty<byte>(), Array.Empty<byte[]>(), Array.Empty<byte[]>());
        var layers = new List<IDiskLayer> { s_driver.Create(cf, options, parentDesc) };
        if (parentBytes is not null) layers.Add(s_driver.Open(new CrashSimulationFile("/sim/parent.qcow2", parentBytes), false));
        using (var chain = new DiskChain(layers))
        {
            chain.Write(1L * Cluster, RandomData.Bytes(Cluster, 2));
            chain.Write(6L * Cluster + 512, RandomData.Bytes(4096, 3));
        }
        var s = partial with { ChildBytes = cf.CurrentContent() };
        var old = ReadClusters(s, s.ChildBytes);
        using var c = OpenChain(s, s.ChildBytes, true, out var f);
        Update(c);
        c.Flush();
        return s with { Old = old, New = ReadClusters(s, f.CurrentContent()) };
    }

    private static byte[][] ReadClusters(Scenario s, byte[] childBytes)
    {
        using var chain = OpenChain(s, childBytes, false, out _);
        var clusters = new byte[Clusters][];
        for (int i = 0; i < Clusters; i++)
        {
            clusters[i] = new byte[Cluster];
            chain.Read((long)i * Cluster, clusters[i]);
        }
        return clusters;
    }

    private static void AssertOldOrNew(Scenario s, byte[] childBytes, string when)
    {
        var clusters = ReadClusters(s, childBytes);
        for (int i = 0; i < Clusters; i++)
            Assert.True(clusters[i].AsSpan().SequenceEqual(s.Old[i]) || clusters[i].AsSpan().SequenceEqual(s.New[i]),
                $"{when}: cluster {i} is neither the old nor the new content (first differences {clusters[i].AsSpan().CommonPrefixLength(s.Old[i])} / {clusters[i].AsSpan().CommonPrefixLength(s.New[i])}, byte {clusters[i][0]} old {s.Old[i][0]} new {s.New[i][0]})");
        using (var chain = OpenChain(s, childBytes, false, out _))
        {
            var report = chain.Top.Check();
            Assert.True(report.Problems.All(p => p.Severity == CheckSeverity.Leak), $"{when}: {string.Join("; ", report.Problems)}");
        }
        // Writing on after the crash: new clusters must not land on ones the tables still use.
        using var w = OpenChain(s, childBytes, true, out var wf);
        w.Write(0, RandomData.Bytes(Cluster, 99));
        w.Write(2L * Cluster, RandomData.Bytes(Cluster, 98));
        w.Flush();
        var again = ReadClusters(s, wf.CurrentContent());
        Assert.Equal(RandomData.Bytes(Cluster, 99), again[0]);
        for (int i = 3; i < Clusters; i++)
            Assert.True(again[i].AsSpan().SequenceEqual(clusters[i]), $"{when}: cluster {i} changed after a later allocation");
    }

    private static int CountWrites(Scenario s)
    {
        using var chain = OpenChain(s, s.ChildBytes, true, out var f);
        f.ResetCounters();
        Update(chain);
        chain.Flush();
        return f.WriteCount;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Cut_after_every_write_leaves_old_or_new_content_and_only_leaks(bool differencing)
    {
        var s = Build(differencing);
        foreach (int i in new[] { 1, 3, 4, 6, 7, 9, 10 })
            Assert.False(s.Old[i].AsSpan().SequenceEqual(s.New[i]), $"cluster {i} must change");
        int writes = CountWrites(s);
        Assert.True(writes >= 6, $"only {writes} writes");
        var rng = new Random(1234);
        for (int cut = 0; cut <= writes; cut++)
        {
            var chain = OpenChain(s, s.ChildBytes, true, out var f);
            f.ResetCounters();
            f.FailAtWrite = cut;
            bool crashed = false;
            try
            {
                Update(chain);
                chain.Flush();
            }
            catch (DiskImageException e) when (e.Kind == ErrorKind.Io) { crashed = true; }
            try { chain.Dispose(); } catch (DiskImageException) { }
            Assert.Equal(cut < writes, crashed);
            AssertOldOrNew(s, f.CurrentContent(), $"cut at write {cut}, every pending write kept");
            AssertOldOrNew(s, f.AfterPowerLoss(Array.Empty<int>()), $"cut at write {cut}, no pending write kept");
            for (int k = 0; k < 3; k++)
                AssertOldOrNew(s, f.AfterRandomPowerLoss(rng), $"cut at write {cut}, random power loss {k}");
        }
    }

    /// <summary>
    /// Power loss just before each flush barrier completes: subsets of the writes issued since the previous barrier
    /// reach the disk. This catches a missing barrier, which a cut at a write cannot.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Power_loss_at_every_flush_barrier_leaves_old_or_new_content(bool differencing)
    {
        var s = Build(differencing);
        var states = new List<(string When, byte[] Bytes)>();
        var sim = new CrashSimulationFile("/sim/child.qcow2", s.ChildBytes);
        int barrier = 0;
        sim.BeforeFlush = () =>
        {
            foreach (var (kept, bytes) in sim.PowerLossStates(allSubsetsUpTo: 5, sampledSubsets: 24)) states.Add(($"barrier {barrier}, {kept}", bytes));
            barrier++;
        };
        var layers = new List<IDiskLayer> { s_driver.Open(sim, true) };
        if (s.ParentBytes is not null) layers.Add(s_driver.Open(new CrashSimulationFile("/sim/parent.qcow2", s.ParentBytes), false));
        using (var chain = new DiskChain(layers)) Update(chain);
        sim.BeforeFlush = null;
        Assert.True(barrier >= 3, $"only {barrier} flushes");
        foreach (var (when, bytes) in states) AssertOldOrNew(s, bytes, when);
    }

    [Fact]
    public void Disk_full_at_any_write_is_reported_as_DiskFull_and_leaves_a_consistent_image()
    {
        var s = Build(differencing: true);
        int writes = CountWrites(s);
        for (int at = 0; at < writes; at++)
        {
            var chain = OpenChain(s, s.ChildBytes, true, out var f);
            f.ResetCounters();
            f.DiskFullAtWrite = at;
            var e = Assert.Throws<DiskImageException>(() =>
            {
                Update(chain);
                chain.Flush();
            });
            Assert.Equal(ErrorKind.DiskFull, e.Kind);
            try { chain.Dispose(); } catch (DiskImageException) { }
            AssertOldOrNew(s, f.CurrentContent(), $"disk full at write {at}");
        }
    }
}
