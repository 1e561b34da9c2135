using DiskSnapshotEngine.Block;
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
    // The update ends with its flush (the refcount and table writes are part of it); after the crash two clusters are
    // allocated, so that a table and a data cluster are both placed.
    private static readonly LayerCrashKit s_kit = new(new Qcow2Driver(), ".qcow2", Unit: 64 * KiB, Units: 11, Prepare, Update)
    {
        UpdateFlushes = true,
        RewrittenAfterCrash = [0, 2],
    };

    private static void Prepare(DiskChain chain, int cluster)
    {
        chain.Write(1L * cluster, RandomData.Bytes(cluster, 2));
        chain.Write(6L * cluster + 512, RandomData.Bytes(4096, 3));
    }

    /// <summary>One change per cluster, covering every path of the write code.</summary>
    private static void Update(DiskChain chain, int cluster)
    {
        chain.Write(3L * cluster + 1000, RandomData.Bytes(5000, 31));        // partial write into an unallocated cluster: copy-on-write + allocation
        chain.Write(4L * cluster, RandomData.Bytes(cluster, 32));            // whole unallocated cluster
        chain.Write(1L * cluster + 77, RandomData.Bytes(3000, 33));          // allocated cluster: in place
        chain.Write(5L * cluster, new byte[cluster]);               // whole cluster of zeros: zero flag, no data
        chain.WriteZeroes(6L * cluster, cluster);                   // zeroing an allocated cluster frees it
        chain.WriteZeroes(8L * cluster, cluster);                   // zeroing an unallocated one
        var tail = new byte[cluster / 2];
        RandomData.Bytes(100, 34).CopyTo(tail, 400);
        chain.Write(7L * cluster + cluster / 2, tail);              // partial, mostly zeros: allocation
        chain.Write(10L * cluster - 10, RandomData.Bytes(20, 35));           // crossing into the last cluster
    }

    // The same images filled through placement (shared extents): runs placed and filled by a file write, as
    // FICLONERANGE or copy_file_range would; what a layer refuses to place goes through a normal write.
    private static readonly LayerCrashKit s_placeKit = s_kit with { Update = PlaceUpdate };

    private static void PlaceUpdate(DiskChain chain, int cluster)
    {
        PlaceOrWrite(chain, 3L * cluster, RandomData.Bytes(2 * cluster, 41));        // a run of two unallocated clusters
        PlaceOrWrite(chain, 1L * cluster, RandomData.Bytes(cluster, 42));            // an allocated cluster: in place
        PlaceOrWrite(chain, 7L * cluster + 4096, RandomData.Bytes(cluster / 2, 43)); // part of a cluster: refused in a child
        PlaceOrWrite(chain, 9L * cluster, RandomData.Bytes(cluster, 44));            // a cluster after the others were placed
    }

    private static void PlaceOrWrite(DiskChain chain, long offset, byte[] data)
    {
        var p = (IPlaceableLayer)chain.Top;
        for (int done = 0; done < data.Length;)
        {
            if (!p.TryPlace(offset + done, data.Length - done, out long at, out long placed))
            {
                chain.Write(offset + done, data.AsSpan(done));
                return;
            }
            chain.Top.File.Write(data.AsSpan(done, (int)placed), at);
            done += (int)placed;
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Placed_runs_cut_after_every_write_or_at_every_barrier_leave_old_or_new_content(bool differencing)
    {
        var s = s_placeKit.Build(differencing);
        foreach (int i in new[] { 1, 3, 4, 7, 9 })
            Assert.False(s.Old[i].AsSpan().SequenceEqual(s.New[i]), $"cluster {i} must change");
        s_placeKit.CutAfterEveryWrite(s, minWrites: 6, randomLosses: 3);
        s_placeKit.PowerLossAtEveryBarrier(s, minBarriers: 3, allSubsetsUpTo: 5, sampledSubsets: 24);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Cut_after_every_write_leaves_old_or_new_content_and_only_leaks(bool differencing)
    {
        var s = s_kit.Build(differencing);
        foreach (int i in new[] { 1, 3, 4, 6, 7, 9, 10 })
            Assert.False(s.Old[i].AsSpan().SequenceEqual(s.New[i]), $"cluster {i} must change");
        s_kit.CutAfterEveryWrite(s, minWrites: 6, randomLosses: 3);
    }

    /// <summary>
    /// Power loss just before each flush barrier completes: subsets of the writes issued since the previous barrier
    /// reach the disk. This catches a missing barrier, which a cut at a write cannot.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Power_loss_at_every_flush_barrier_leaves_old_or_new_content(bool differencing) =>
        s_kit.PowerLossAtEveryBarrier(s_kit.Build(differencing), minBarriers: 3, allSubsetsUpTo: 5, sampledSubsets: 24);

    [Fact]
    public void Disk_full_at_any_write_is_reported_as_DiskFull_and_leaves_a_consistent_image() =>
        s_kit.DiskFullAtAnyWrite(s_kit.Build(differencing: true));

    // 512-byte clusters: an L2 table maps 64 of them, so this update needs new L2 tables and new L1 entries (the
    // updates above all stay in the first L2 table, so the L2-before-L1 order is proven here only).
    private static readonly LayerCrashKit s_newTablesKit = new(new Qcow2Driver(), ".qcow2", Unit: 512, Units: 140, PrepareFirstTable, UpdateNewTables)
    {
        UpdateFlushes = true,
        RewrittenAfterCrash = [0, 2],
    };

    private static void PrepareFirstTable(DiskChain chain, int cluster) => chain.Write(1L * cluster, RandomData.Bytes(cluster, 5));

    private static void UpdateNewTables(DiskChain chain, int cluster)
    {
        chain.Write(70L * cluster, RandomData.Bytes(cluster, 51));          // a cluster of L2 table 1
        chain.Write(1L * cluster + 7, RandomData.Bytes(100, 52));           // in place, in L2 table 0
        chain.Write(130L * cluster + 100, RandomData.Bytes(300, 53));       // part of a cluster of L2 table 2
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void New_l2_tables_cut_after_every_write_or_at_every_barrier_leave_old_or_new_content(bool differencing)
    {
        var s = s_newTablesKit.Build(differencing);
        foreach (int i in new[] { 1, 70, 130 })
            Assert.False(s.Old[i].AsSpan().SequenceEqual(s.New[i]), $"cluster {i} must change");
        s_newTablesKit.CutAfterEveryWrite(s, minWrites: 4, randomLosses: 3);
        s_newTablesKit.PowerLossAtEveryBarrier(s, minBarriers: 2, allSubsetsUpTo: 5, sampledSubsets: 24);
    }
}
