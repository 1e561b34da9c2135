using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.Formats.Vhd;
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
    private static readonly LayerCrashKit s_kit = new(new VhdDriver(), ".vhd", Unit: 64 * 1024, Units: 8, Prepare, Update)
    {
        AssertFile = (bytes, when) =>
            Assert.True(VhdFooter.HasCookie(bytes.AsSpan(bytes.Length - 512)), $"{when}: the file does not end with a footer"),
    };

    private static void Prepare(DiskChain chain, int unit)
    {
        chain.Write(1L * unit, RandomData.Bytes(unit, 2));
        chain.Write(2L * unit + 512, RandomData.Bytes(4096, 3));
    }

    /// <summary>The update under test: one change per block, covering every path of the layer's write code.</summary>
    private static void Update(DiskChain chain, int unit)
    {
        chain.Write(3L * unit + 1000, RandomData.Bytes(5000, 31));   // partial write into an unallocated block
        chain.Write(4L * unit, RandomData.Bytes(unit, 32));           // a whole unallocated block
        chain.Write(1L * unit + 77, RandomData.Bytes(3000, 33));      // an allocated block, sectors present: in place
        chain.Write(2L * unit + 40000, RandomData.Bytes(9000, 34));   // an allocated block, sectors not all present
        chain.Write(5L * unit, new byte[unit]);                         // a whole block of zeros
        chain.WriteZeroes(6L * unit, unit);                             // explicit zeroing
        var tail = new byte[unit / 2];
        RandomData.Bytes(100, 35).CopyTo(tail, 400);
        chain.Write(7L * unit + unit / 2, tail);                        // mostly zeros, partial: allocation
        if (chain.Layers.Count > 1) chain.Top.SetParent(ParentDescriptor.Of(chain.Layers[1])); // relink: new locators, one header write
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Cut_after_every_write_leaves_old_or_new_content_and_only_leaks(bool differencing)
    {
        var s = s_kit.Build(differencing);
        Assert.False(s.Old.Zip(s.New).All(p => p.First.AsSpan().SequenceEqual(p.Second)), "the update must change something");
        s_kit.CutAfterEveryWrite(s, minWrites: 12, randomLosses: 2);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Power_loss_at_every_flush_barrier_leaves_old_or_new_content(bool differencing) =>
        s_kit.PowerLossAtEveryBarrier(s_kit.Build(differencing), minBarriers: 6, allSubsetsUpTo: 4, sampledSubsets: 16);

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Disk_full_at_any_write_is_reported_as_DiskFull_and_leaves_a_consistent_image(bool differencing) =>
        s_kit.DiskFullAtAnyWrite(s_kit.Build(differencing));
}
