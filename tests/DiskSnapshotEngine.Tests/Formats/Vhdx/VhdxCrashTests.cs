using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.Formats.Vhdx;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Formats.Vhdx;

/// <summary>
/// Crash safety at driver level: a session that allocates blocks is cut at every write of its Flush/close, and every
/// power-loss outcome (durable bytes plus any subset, in any order, of the unflushed writes) must open and read as
/// exactly the old content or exactly the new one.
/// </summary>
public class VhdxCrashTests
{
    private const long Size = 8L << 20;

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Every_cut_and_power_loss_leaves_exactly_the_old_or_the_new_content(bool differencing)
    {
        using var dir = new TempDirectory("vhdx-crash");
        var basePath = dir.File("base.vhdx");
        using (var b = DiskImage.Create(basePath, new ImageCreateOptions(Size, BlockSize: 1 << 20)))
        {
            b.Write(0, Enumerable.Repeat((byte)0x11, 1 << 20).ToArray());
            b.Write(4L << 20, Enumerable.Repeat((byte)0x22, 8192).ToArray());
        }
        string target = basePath;
        if (differencing)
        {
            target = dir.File("child.vhdx");
            DiskImage.CreateDifferencing(target, basePath).Dispose();
        }
        var original = File.ReadAllBytes(target);
        byte[] oldContent = ReadAll(target);

        // The session only allocates: new blocks (whole and partial) and a ZERO block. Overwriting a block in place is
        // as atomic as a disk write (not at all), so it is not part of this property.
        var rng = new Random(3);
        var w1 = new byte[(1 << 20) + 3072]; // whole sectors: a differencing layer takes sector-aligned writes (the chain widens others)
        var w2 = new byte[1024];
        rng.NextBytes(w1);
        rng.NextBytes(w2);
        var newContent = (byte[])oldContent.Clone();
        w1.CopyTo(newContent, 2L << 20);
        w2.CopyTo(newContent, (5L << 20) + 512);
        Array.Clear(newContent, 6 << 20, 2 << 20);

        var materialised = dir.File("after-crash.vhdx");
        var (writes, outcomes) = VhdxTestUtil.EveryCut(target, original, materialised,
            uncounted: layer =>
            {
                layer.Write(2L << 20, w1);
                layer.Write((5L << 20) + 512, w2);
                layer.WriteZeroes(6L << 20, 2L << 20);
            },
            session: layer =>
            {
                layer.Flush();
                layer.Dispose();
            },
            randomOutcomes: 6,
            check: (k, writable) =>
            {
                // Read-only (in-memory replay) and read-write (replay into the file) must agree.
                var content = ReadAll(materialised, writable, differencing ? basePath : null);
                bool isOld = content.AsSpan().SequenceEqual(oldContent), isNew = content.AsSpan().SequenceEqual(newContent);
                Assert.True(isOld || isNew, $"cut at write {k}, writable={writable}: content is neither the old nor the new");
            });
        Assert.True(ReadAll(materialised).AsSpan().SequenceEqual(newContent));
        Assert.True(writes >= 3, $"the session made only {writes} writes");
        Assert.True(outcomes > 20);
    }

    private static byte[] ReadAll(string path, bool writable = false, string? parent = null)
    {
        var options = new OpenOptions { Writable = writable, SearchPaths = parent is null ? Array.Empty<string>() : new[] { Path.GetDirectoryName(parent)! } };
        using var chain = DiskImage.Open(path, options);
        var buf = new byte[chain.VirtualSize];
        chain.Read(0, buf);
        return buf;
    }
}
