using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;
using DiskSnapshotEngine.Operations;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Operations;

/// <summary>
/// A durable clone writes its pieces through O_DIRECT as concurrent requests (<see cref="ParallelDirectWrite"/>). A
/// disk that fills up while they are in flight, or a cancellation between them, fails the clone with its kind and
/// publishes nothing; a clone that runs through equals its source byte for byte.
/// </summary>
public sealed class ParallelWriteCloneTests
{
    private const int Size = 24 << 20;

    private static string Source(TempDirectory dir)
    {
        string raw = dir.File("src.raw");
        File.WriteAllBytes(raw, RandomData.Bytes(Size, 11));
        return raw;
    }

    [RequiresMountFact]
    public async Task A_disk_that_fills_up_between_pieces_fails_the_clone_with_disk_full_and_publishes_nothing()
    {
        Assert.True(ParallelDirectWrite.Streams > 1, "set DSE_DIRECT_WRITE_STREAMS to 2 or more (or unset) for this test");
        using var dir = new TempDirectory("parallel-full");
        string src = Source(dir);
        foreach (string ext in new[] { ".vhdx", ".qcow2", ".vdi" })
        {
            using var fs = SmallFileSystem.TryMount(40)!;
            string dst = fs.File("clone" + ext);
            var fill = new FillOnFirstReport(fs);
            var ex = await Assert.ThrowsAsync<DiskImageException>(() => FullClone.RunAsync(src, dst, null, fill));
            Assert.True(ex.Kind == ErrorKind.DiskFull, $"{ext}: {ex.Kind}: {ex.Message}");
            Assert.True(fill.Filled, $"{ext}: the disk was never filled");
            Assert.False(File.Exists(dst), $"{ext}: a clone was published");
            Assert.False(File.Exists(dst + ".dse-partial"), $"{ext}: the partial clone was left behind");
        }
    }

    [Fact]
    public async Task A_cancellation_while_pieces_are_in_flight_publishes_nothing_and_a_full_run_equals_the_source()
    {
        using var dir = new TempDirectory("parallel-cancel");
        string src = Source(dir);
        foreach (string ext in new[] { ".vhdx", ".qcow2" })
        {
            string dst = dir.File("clone" + ext);
            using var cts = new CancellationTokenSource();
            var ex = await Assert.ThrowsAsync<DiskImageException>(() => FullClone.RunAsync(src, dst, null, new CancelOnFirstReport(cts), cts.Token));
            Assert.Equal(ErrorKind.Cancelled, ex.Kind);
            Assert.False(File.Exists(dst), $"{ext}: a cancelled clone was published");
            Assert.False(File.Exists(dst + ".dse-partial"), $"{ext}: the partial clone was left behind");

            await FullClone.RunAsync(src, dst);
            Assert.True(ImageCompare.Run(src, dst).Identical, $"{ext}: the clone differs from its source");
        }
    }

    private sealed class CancelOnFirstReport(CancellationTokenSource cts) : IProgress<OperationProgress>
    {
        public void Report(OperationProgress value) => cts.Cancel();
    }

    // Runs on the writer thread after the first piece: from then on every write that needs new space fails (ENOSPC).
    private sealed class FillOnFirstReport(SmallFileSystem fs) : IProgress<OperationProgress>
    {
        public bool Filled { get; private set; }

        public void Report(OperationProgress value)
        {
            if (Filled) return;
            Filled = true;
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
}
