using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.IO;

/// <summary>
/// A large direct write goes out as concurrent parts (<see cref="ParallelDirectWrite"/>). Whichever part fails, on the
/// caller's thread or on the pool's, the write fails with the kernel's own error, and only after every part has
/// finished (the caller may reuse the buffer as soon as Write returns). The full disk is a real tmpfs.
/// </summary>
public sealed class ParallelDirectWriteTests
{
    private const int Piece = 4 << 20;

    [RequiresMountFact]
    public void A_full_disk_in_either_part_fails_the_write_with_disk_full_after_both_parts_finished()
    {
        // Part 0 is [0, 2 MiB) on the caller's thread, part 1 is [2 MiB, 4 MiB) on a pool thread. Space already
        // allocated is overwritten without new space, so exactly the other part hits ENOSPC.
        foreach (int failing in new[] { 1, 0 })
        {
            using var fs = SmallFileSystem.TryMount(8)!;
            string path = fs.File("staged.img");
            using var file = ImageFile.Create(path);
            int keptStart = failing == 1 ? 0 : Piece / 2;
            file.Write(RandomData.Bytes(Piece / 2, 1), keptStart);
            file.Flush();
            FillUp(fs);
            file.UseDirectWrites();
            Assert.True(file.DirectWritesEnabled, "O_DIRECT could not be opened on tmpfs");
            file.DirectStreams = 2;

            using var buffer = AlignedBufferPool.Rent(Piece);
            RandomData.Fill(buffer.Span[..Piece], 2);
            var ex = Assert.Throws<DiskImageException>(() => file.Write(buffer.Span[..Piece], 0));
            Assert.True(ex.Kind == ErrorKind.DiskFull, $"part {failing} failing: {ex.Kind}: {ex.Message}");
            Assert.Contains(path, ex.Message);
            // The part that had space finished before the write returned: its bytes are the new ones.
            var kept = new byte[Piece / 2];
            Assert.Equal(kept.Length, file.Read(kept, keptStart));
            Assert.True(kept.AsSpan().SequenceEqual(buffer.Span.Slice(keptStart, Piece / 2)),
                $"part {1 - failing} had not finished (or not run) when the write with part {failing} failing returned");
            Assert.Equal(0, file.DirectWrites);
        }
    }

    [Fact]
    public void Each_large_direct_write_goes_out_as_the_configured_number_of_requests()
    {
        using var dir = new TempDirectory("direct-parts");
        foreach (int streams in new[] { 1, 2, 3 })
        {
            using var file = ImageFile.Create(dir.File($"s{streams}.img"));
            file.UseDirectWrites();
            Assert.True(file.DirectWritesEnabled, "O_DIRECT could not be opened on the test folder's file system");
            file.DirectStreams = streams;
            using var buffer = AlignedBufferPool.Rent(Piece);
            RandomData.Fill(buffer.Span[..Piece], streams);
            file.Write(buffer.Span[..Piece], Piece);
            // Below two minimum parts a write is not split.
            file.Write(buffer.Span[..(ParallelDirectWrite.MinimumPart + 4096)], 0);
            Assert.Equal(2, file.DirectWrites);
            Assert.Equal(streams + 1, file.DirectRequests);
            var back = new byte[Piece];
            Assert.Equal(Piece, file.Read(back, Piece));
            Assert.True(back.AsSpan().SequenceEqual(buffer.Span[..Piece]), $"{streams} streams: content differs");
        }
    }

    // Takes every free page of the small file system, so a write needing new space fails with ENOSPC.
    private static void FillUp(SmallFileSystem fs)
    {
        var chunk = new byte[64 << 10];
        using var filler = new FileStream(fs.File("filler"), FileMode.CreateNew, FileAccess.Write, FileShare.None, 0);
        try
        {
            while (true) filler.Write(chunk);
        }
        catch (IOException)
        {
            // The disk is full.
        }
    }
}
