using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;
using DiskSnapshotEngine.Tests.Operations;

namespace DiskSnapshotEngine.Tests.Snapshots;

/// <summary>A disk resized after a snapshot (it is then a child larger than the snapshot's layer), as Hyper-V allows.</summary>
public class SnapshotResizeTests
{
    [RequiresToolFact("qemu-img")]
    public async Task A_disk_grown_after_a_snapshot_reverts_to_the_snapshots_size_and_keeps_its_own_on_delete()
    {
        using var dir = new TempDirectory("snapshot-resize");
        string disk = dir.File("disk.vhdx"), data = dir.File("a.bin"), more = dir.File("b.bin");
        File.WriteAllBytes(data, RandomData.Bytes(6 << 20, 51));
        File.WriteAllBytes(more, RandomData.Bytes(100_000, 52));
        async Task Dse(params string[] args)
        {
            var r = await CliRunner.RunAsync(args);
            Assert.True(r.ExitCode == 0, r.ToString());
        }
        await Dse("create", disk, "--size", "6M");
        await Dse("write", disk, "--offset", "0", "--input", data);
        var atSnapshot = OpsKit.ReadAll(disk);
        await Dse("snapshot", "create", disk, "--name", "s1");
        await Dse("resize", disk, "--size", "10M");
        await Dse("write", disk, "--offset", "9M", "--input", more);
        var grown = OpsKit.ReadAll(disk);
        Assert.Equal(10L << 20, grown.Length);
        Assert.Equal(-1, OpsKit.FirstDifference(atSnapshot, grown[..(6 << 20)]));

        await Dse("snapshot", "create", disk, "--name", "s2");
        await Dse("snapshot", "revert", disk, "--name", "s1");
        OpsKit.AssertContent(atSnapshot, disk, "the disk reverted to s1");
        await Dse("snapshot", "revert", disk, "--name", "s2");
        OpsKit.AssertContent(grown, disk, "the disk reverted to s2");
        // Deleting s1 merges the grown layers into the smaller snapshot layer, which grows first.
        await Dse("snapshot", "delete", disk, "--name", "s1");
        await Dse("snapshot", "delete", disk, "--name", "s2");
        OpsKit.AssertContent(grown, disk, "the disk after deleting both snapshots");
        ExternalTool.RunChecked("qemu-img", "check", disk);
        var raw = dir.File("expected.raw");
        File.WriteAllBytes(raw, grown);
        ExternalTool.RunChecked("qemu-img", "compare", "-F", "raw", disk, raw);
    }
}
