using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Formats.Vhdx;
using DiskSnapshotEngine.Operations;
using DiskSnapshotEngine.Tests.Infrastructure;
using DiskSnapshotEngine.Tests.Operations;

namespace DiskSnapshotEngine.Tests.Formats.Vhdx;

/// <summary>
/// Shrinking a differencing VHDX whose ZERO blocks lie past the new end, killed at every write, with the resize's early
/// log commit forced after each cleared BAT entry: the parent's data there must never show under the old size.
/// </summary>
public class VhdxShrinkCrashTests
{
    private const long Size = 6L << 20, NewSize = 2L << 20;

    [Fact]
    public async Task A_child_shrunk_over_zero_blocks_killed_at_any_write_never_shows_its_parent()
    {
        using var dir = new TempDirectory("vhdx-shrink-crash");
        string seed = Path.Combine(dir.Path, "seed");
        Directory.CreateDirectory(seed);
        string b = Path.Combine(seed, "base.vhdx"), c = Path.Combine(seed, "child.vhdx");
        var model = new byte[Size];
        OpsKit.CreateBase(b, Size, 1 << 20);
        using (var chain = DiskImage.Open(b, OpenOptions.ReadWrite)) chain.Write(0, RandomData.Bytes((int)Size, 81));
        OpsKit.CreateChild(c, b);
        using (var chain = DiskImage.Open(c, OpenOptions.ReadWrite))
        {
            chain.Read(0, model);
            chain.WriteZeroes(NewSize, Size - NewSize);
            Array.Clear(model, (int)NewSize, (int)(Size - NewSize));
        }
        VhdxLayer.ResizeCommitThreshold.Value = 1;
        bool completed = false;
        for (int n = 0; !completed; n++)
        {
            Assert.True(n < 80, "resize never completed");
            string work = Path.Combine(dir.Path, $"run{n}");
            OpsKit.CopyFolder(seed, work);
            string child = Path.Combine(work, "child.vhdx");
            completed = await OpsKit.ResizeCutAtAsync(child, model, Size, NewSize, n);
            Directory.Delete(work, true);
        }
    }
}
