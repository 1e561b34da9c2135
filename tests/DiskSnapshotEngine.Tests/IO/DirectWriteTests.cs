using DiskSnapshotEngine.IO;
using DiskSnapshotEngine.Operations;
using DiskSnapshotEngine.Tests.Infrastructure;
using FsCheck;
using FsCheck.Fluent;

namespace DiskSnapshotEngine.Tests.IO;

/// <summary>
/// Staging files send large aligned writes through O_DIRECT and everything else through the page cache. Both
/// paths touch the same file, so the content must equal a flat model whatever the mix, read back through the
/// file, through a fresh handle, and by a full clone that qemu-img then checks.
/// </summary>
public sealed class DirectWriteTests
{
    private const int Size = 8 << 20;

    private readonly record struct Write(int Offset, int Length, int Seed, bool Aligned);

    // Aligned writes are large, 4 KiB multiples at 4 KiB offsets (the direct path); the rest are anything at all,
    // often overlapping what an aligned write just put there.
    private static readonly Gen<Write> s_write = Gen.Frequency(
        (3, from block in Gen.Choose(0, Size / 4096 - 16)
            from pages in Gen.Frequency((3, Gen.Choose(16, 300)), (1, Gen.Choose(256, 1100)))
            from seed in Gen.Choose(1, int.MaxValue - 1)
            select new Write(block * 4096, Math.Min(pages * 4096, Size - block * 4096), seed, true)),
        (2, from off in Gen.Choose(0, Size - 1)
            from len in Gen.Frequency((3, Gen.Choose(1, 9000)), (1, Gen.Choose(1, 1 << 20)))
            from seed in Gen.Choose(1, int.MaxValue - 1)
            select new Write(off, Math.Min(len, Size - off), seed, false)));

    [Fact]
    public void Mixed_direct_and_buffered_writes_equal_the_model()
    {
        // Large direct writes go out as 1 to 4 concurrent parts (ParallelDirectWrite); the content must not care.
        var runs = from l in Gen.ListOf(s_write) from streams in Gen.Choose(1, 4) select (l.Take(30).ToArray(), streams);
        Prop.ForAll(Arb.From(runs), r => Run(r.Item1, r.Item2)).Check(Config.QuickThrowOnFailure.WithMaxTest(25));
    }

    private static void Run(Write[] writes, int streams)
    {
        using var dir = new TempDirectory("direct");
        string path = dir.File("staged.img");
        var model = new byte[Size];
        long direct = 0;
        using (var file = ImageFile.Create(path))
        {
            file.UseDirectWrites();
            Assert.True(file.DirectWritesEnabled, "O_DIRECT could not be opened on the test folder's file system");
            file.DirectStreams = streams;
            foreach (var w in writes)
            {
                // Aligned writes come from an aligned pooled buffer, as the copy loops' pieces do.
                using var buffer = AlignedBufferPool.Rent(Math.Max(1, w.Length));
                var data = buffer.Span[..w.Length];
                RandomData.Fill(data, w.Seed);
                file.Write(data, w.Offset);
                data.CopyTo(model.AsSpan(w.Offset));
                AssertSame(model, file, file.Length);
            }
            direct = file.DirectWrites;
            Assert.Equal(writes.Max(w => (long?)w.Offset + w.Length) ?? 0, file.Length);
            file.Flush();
        }
        if (writes.Any(w => w.Aligned && w.Length >= 64 << 10)) Assert.True(direct > 0, "no write took the direct path");
        using var reopened = ImageFile.Open(path, writable: false);
        AssertSame(model, reopened, reopened.Length);
    }

    private static void AssertSame(byte[] model, IImageFile file, long length)
    {
        var actual = new byte[length];
        int got = file.Read(actual, 0);
        Assert.Equal(length, got);
        Assert.True(actual.AsSpan().SequenceEqual(model.AsSpan(0, (int)length)), $"{file.Path}: content differs from the model");
    }

    [RequiresToolFact("qemu-img")]
    public async Task A_clone_staged_with_direct_writes_passes_qemu_img_check_and_compare()
    {
        using var dir = new TempDirectory("direct-clone");
        string raw = dir.File("src.raw");
        var data = RandomData.Bytes(24 << 20, 7);
        // Odd-sized runs and a tail that is not a block multiple exercise the buffered fallback inside the same file.
        data.AsSpan(5 << 20, (3 << 20) + 123).Clear();
        await File.WriteAllBytesAsync(raw, data);
        foreach (string ext in new[] { "vhdx", "vdi" })
        {
            string clone = dir.File("clone." + ext);
            await FullClone.RunAsync(raw, clone);
            Assert.Equal(0, ExternalTool.Run("qemu-img", "check", "-q", clone).ExitCode);
            var compare = ExternalTool.Run("qemu-img", "compare", "-q", "-f", "raw", "-F", ext, raw, clone);
            Assert.True(compare.ExitCode == 0, $"qemu-img compare of {ext} clone: {compare.StdOut}{compare.StdErr}");
        }
    }
}
