using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.Operations;
using DiskSnapshotEngine.Snapshots;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Snapshots;

/// <summary>Found by tests/soak.py: a pull relinks the disk past its snapshot's layer, and rollback must still go back to that snapshot.</summary>
public class SnapshotAfterPullTests
{
    [Theory]
    [InlineData(".vdi")]
    [InlineData(".vhdx")]
    public async Task Rollback_after_a_pull_returns_to_the_snapshot_the_state_was_started_from(string ext)
    {
        using var dir = new TempDirectory();
        var disk = dir.File("disk" + ext);
        DiskImage.Create(disk, new ImageCreateOptions(16L << 20, ImageType.Dynamic, 1 << 20)).Dispose();
        Write(disk, 0, 3_000_000, 1);
        DiskSnapshots.Create(disk, "s1");
        Write(disk, 100_000, 500_000, 2);
        DiskSnapshots.Create(disk, "s2");
        var s2 = Content(disk);
        Write(disk, 5_000_000, 500_000, 3);

        await Merge.PullAsync(disk);
        Assert.Equal("s2", DiskSnapshots.Rollback(disk).Name);
        Assert.Equal(s2, Content(disk));
        // A snapshot taken now hangs under s2 in the tree as well.
        var s3 = DiskSnapshots.Create(disk, "s3");
        Assert.Equal(DiskSnapshots.Catalog(disk).Snapshots.Single(s => s.Name == "s2").Id, s3.Parent);
    }

    private static void Write(string disk, long offset, int length, int seed)
    {
        var data = RandomData.Bytes(length, seed);
        using var chain = DiskImage.Open(disk, OpenOptions.ReadWrite);
        chain.Write(offset, data);
    }

    private static string Content(string disk)
    {
        using var chain = DiskImage.Open(disk);
        return ContentHash.Of(chain);
    }
}
