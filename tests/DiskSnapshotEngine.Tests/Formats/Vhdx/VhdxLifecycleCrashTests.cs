using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.Formats.Vhdx;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Formats.Vhdx;

/// <summary>
/// The in-place lifecycle steps of a VHDX layer (new Virtual Disk ID, resize, detach, header and region table repair),
/// cut at every write and then every power-loss outcome (durable bytes plus subsets of the unflushed writes): each
/// outcome opens (read-only with an in-memory replay, and read-write) with exactly the old state or exactly the new one.
/// </summary>
public class VhdxLifecycleCrashTests
{
    private const long Size = 6L << 20;

    private sealed record State(byte[] Content, Guid Id, bool HasParent);

    private static string BaseWithData(TempDirectory dir, string name, long size = Size)
    {
        string path = dir.File(name);
        using var b = DiskImage.Create(path, new ImageCreateOptions(size, BlockSize: 1 << 20));
        var rng = new Random(5);
        var data = new byte[(1 << 20) + 4096];
        rng.NextBytes(data);
        b.Write(0, data);
        b.Write(3L << 20, data.AsSpan(0, 8192));
        b.Flush();
        return path;
    }

    private static State Read(string path, bool writable, string? searchDir = null)
    {
        var options = new OpenOptions { Writable = writable, SearchPaths = searchDir is null ? Array.Empty<string>() : new[] { searchDir } };
        using var chain = DiskImage.Open(path, options);
        var content = new byte[chain.VirtualSize];
        chain.Read(0, content);
        Assert.False(chain.Check().HasErrors, string.Join("; ", chain.Check().Problems));
        return new State(content, chain.Top.Identity.Id, chain.Top.ParentLink is not null);
    }

    private static bool Same(State a, State b) => a.Id == b.Id && a.HasParent == b.HasParent && a.Content.AsSpan().SequenceEqual(b.Content);

    /// <summary>Runs <paramref name="change"/> on <paramref name="target"/> cut at write 0, 1, 2... until it completes.</summary>
    private static void EveryCut(TempDirectory dir, string target, Action<VhdxLayer> change, Func<State, bool> isNew, string? searchDir = null)
    {
        var original = File.ReadAllBytes(target);
        var old = Read(target, writable: false, searchDir);
        var materialised = dir.File("after-crash.vhdx");
        var (writes, outcomes) = VhdxTestUtil.EveryCut(target, original, materialised, uncounted: null,
            session: layer =>
            {
                change(layer);
                layer.Dispose();
            },
            randomOutcomes: 4,
            check: (k, writable) =>
            {
                var s = Read(materialised, writable, searchDir);
                Assert.True(Same(s, old) || isNew(s), $"cut at write {k}, writable={writable}: neither the old state nor the new one");
            });
        Assert.True(isNew(Read(materialised, false, searchDir)), "the completed change did not leave the new state");
        Assert.True(writes >= 1, "the change made no write");
        Assert.True(outcomes > 10);
    }

    [Fact]
    public void A_new_virtual_disk_id_is_all_or_nothing()
    {
        using var dir = new TempDirectory("vhdx-life-id");
        var path = BaseWithData(dir, "disk.vhdx");
        var old = Read(path, false);
        var id = Guid.NewGuid();
        EveryCut(dir, path, l => l.SetIdentity(id), s => s.Id == id && s.Content.AsSpan().SequenceEqual(old.Content));
    }

    [Theory]
    [InlineData(9L << 20)]          // grow, the BAT region has room
    [InlineData((5L << 20) + 4096)] // grow to a partial last block
    [InlineData(4L << 20)]          // shrink, no data past 4 MiB
    public void A_resize_in_place_is_all_or_nothing(long newSize)
    {
        using var dir = new TempDirectory("vhdx-life-resize");
        var path = BaseWithData(dir, "disk.vhdx", (4L << 20) + 512);
        var old = Read(path, false);
        var expected = new byte[newSize];
        Array.Copy(old.Content, expected, Math.Min(old.Content.Length, newSize));
        EveryCut(dir, path, l => Assert.True(l.TryResizeInPlace(newSize)), s => s.Id == old.Id && s.Content.AsSpan().SequenceEqual(expected));
    }

    [Fact]
    public void A_detach_is_all_or_nothing_and_ends_a_base_reading_the_same()
    {
        using var dir = new TempDirectory("vhdx-life-detach");
        // An empty parent: every sector the child does not hold reads zeros, as after detach's copy.
        using (DiskImage.Create(dir.File("parent.vhdx"), new ImageCreateOptions(Size, BlockSize: 1 << 20))) { }
        string child = dir.File("child.vhdx");
        using (var c = DiskImage.CreateDifferencing(child, dir.File("parent.vhdx"), sealParentAs: SealReasons.None)) { }
        using (var chain = DiskImage.Open(child, OpenOptions.ReadWrite))
        {
            // Partial blocks (sector bitmap in use), a whole block, a ZERO block.
            chain.Write(512, Enumerable.Repeat((byte)0x5A, 3000).ToArray());
            chain.Write((2L << 20) + 8192, Enumerable.Repeat((byte)0xA5, 4096).ToArray());
            chain.Write(4L << 20, Enumerable.Repeat((byte)0x33, 1 << 20).ToArray());
            chain.WriteZeroes(5L << 20, 1 << 20);
        }
        var old = Read(child, false, dir.Path);
        Assert.True(old.HasParent);
        EveryCut(dir, child, l => l.DetachFromParent(), s => !s.HasParent && s.Id == old.Id && s.Content.AsSpan().SequenceEqual(old.Content), dir.Path);
    }

    [Theory]
    [InlineData(128L << 10, "header 2")]
    [InlineData(64L << 10, "header 1")]
    [InlineData(256L << 10, "region table 2")]
    [InlineData(192L << 10, "region table 1")]
    public void A_repair_of_a_damaged_copy_is_all_or_nothing_and_leaves_both_copies_valid(long damageAt, string copy)
    {
        using var dir = new TempDirectory("vhdx-life-repair");
        var path = BaseWithData(dir, "disk.vhdx");
        using (var f = File.OpenWrite(path)) { f.Position = damageAt + 100; f.WriteByte(0x5A); }
        Assert.Contains(Check(path), p => p.Structure == copy);
        var old = Read(path, false);
        IReadOnlyList<string> said = Array.Empty<string>();
        EveryCut(dir, path, l => said = l.RepairMetadata(), s => Same(s, old));
        Assert.Contains(said, s => s.StartsWith(copy, StringComparison.Ordinal));

        // The completed repair, for real: both copies valid, content and identity kept, and qemu-img agrees.
        using (var l = (VhdxLayer)DiskImage.OpenLayer(path, writable: true)) l.RepairMetadata();
        Assert.DoesNotContain(Check(path), p => p.Structure == copy);
        Assert.True(Same(Read(path, false), old));
        if (ExternalTool.Has("qemu-img")) ExternalTool.RunChecked("qemu-img", "check", path);
    }

    private static IReadOnlyList<CheckProblem> Check(string path)
    {
        using var l = DiskImage.OpenLayer(path, writable: false);
        return l.Check().Problems;
    }

    /// <summary>
    /// Growing exposes the tail of the old last block: bytes another writer left in its payload past the old end must
    /// read as zeros after the resize (MS-VHDX leaves them undefined).
    /// </summary>
    [Fact]
    public void Growth_zeroes_what_the_old_last_block_held_past_the_old_end()
    {
        using var dir = new TempDirectory("vhdx-life-tail");
        long size = (2L << 20) + 4096;
        string path = dir.File("disk.vhdx");
        using (var b = DiskImage.Create(path, new ImageCreateOptions(size, BlockSize: 1 << 20)))
            b.Write(2L << 20, Enumerable.Repeat((byte)0x77, 4096).ToArray());
        long payload;
        using (var l = DiskImage.OpenLayer(path, false)) payload = l.GetStatus(2L << 20, 4096).FileOffset;
        // Garbage right after the old end, inside the same payload block.
        using (var f = File.OpenWrite(path)) { f.Position = payload + 4096; f.Write(Enumerable.Repeat((byte)0xEE, 8192).ToArray()); }
        using (var l = (VhdxLayer)DiskImage.OpenLayer(path, writable: true)) Assert.True(l.TryResizeInPlace(4L << 20));
        var content = Read(path, false).Content;
        Assert.Equal(4L << 20, content.Length);
        Assert.True(content.AsSpan((int)(2L << 20), 4096).IndexOfAnyExcept((byte)0x77) < 0);
        Assert.Equal(-1, content.AsSpan((int)size).IndexOfAnyExcept((byte)0));
    }
}
