using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.Operations;
using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Operations;

public class RawExportTests
{
    /// <summary>Data runs of many sizes, some larger than a chunk, some adjacent, with holes between.</summary>
    private static byte[] MakeImage(string path, long size, int seed)
    {
        var model = new byte[size];
        var rng = new Random(seed);
        using var layer = DiskImage.Create(path, new ImageCreateOptions(size));
        using var chain = new DiskChain(new[] { layer });
        long at = 4096;
        while (at < size - (1 << 20))
        {
            int len = rng.Next(1, 3) == 1 ? rng.Next(1, 64 << 10) : rng.Next(1 << 20, RawExport.ChunkSize * 2);
            len = (int)Math.Min(len, size - at);
            var data = new byte[len];
            rng.NextBytes(data);
            chain.Write(at, data);
            data.CopyTo(model, at);
            at += len + (rng.Next(0, 2) == 0 ? 0 : rng.Next(4096, 4 << 20));
        }
        chain.Flush();
        return model;
    }

    [Fact]
    public async Task File_and_stream_exports_equal_the_disk_and_progress_reaches_the_total()
    {
        using var dir = new TempDirectory("export");
        long size = 48L << 20;
        var model = MakeImage(dir.File("d.img"), size, 21);
        using var chain = DiskImage.Open(dir.File("d.img"));

        foreach (bool durable in new[] { true, false })
        {
            // Both pumps (durable, and the --no-sync page-cache workers) report from 0 to the whole virtual disk.
            var reports = new List<OperationProgress>();
            var progress = new SyncProgress(r => { lock (reports) reports.Add(r); });
            string output = dir.File($"out-{durable}.raw");
            await RawExport.ExportToFileAsync(chain, output, progress: progress, durable: durable);
            Assert.Equal(ContentHash.Of(model), ContentHash.OfFile(output));
            Assert.Equal((0L, size), (reports[0].Done, reports[^1].Done));
            Assert.All(reports, r => Assert.Equal(size, r.Total));
            Assert.True(reports.Zip(reports.Skip(1)).All(p => p.First.Done <= p.Second.Done), "progress went backwards");
        }

        var stream = new MemoryStream();
        await RawExport.ExportToStreamAsync(chain, stream);
        Assert.Equal(ContentHash.Of(model), ContentHash.Of(stream.ToArray()));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task All_zero_pieces_of_data_extents_stay_holes(bool durable)
    {
        using var dir = new TempDirectory("export");
        string image = dir.File("d.img");
        // 8 MiB written as data (allocated in the raw file) of which only 4 KiB, unaligned, is not zero.
        var written = new byte[8 << 20];
        RandomData.Fill(written.AsSpan(3_000_001, 4096), 24);
        using (var layer = DiskImage.Create(image, new ImageCreateOptions(32L << 20)))
        using (var c = new DiskChain(new[] { layer }))
        {
            c.Write(1 << 20, written);
            c.Flush();
        }
        using var chain = DiskImage.Open(image);
        Assert.Contains(chain.GetExtents(0, chain.VirtualSize), e => e.Kind == ExtentKind.Data && e.Length >= 8 << 20);

        await RawExport.ExportToFileAsync(chain, dir.File("out.raw"), durable: durable);
        var model = new byte[32 << 20];
        written.CopyTo(model, 1 << 20);
        Assert.Equal(ContentHash.Of(model), ContentHash.OfFile(dir.File("out.raw")));
        Assert.InRange(VerbScenarios.AllocatedBytes(dir.File("out.raw")), 4096, 64 << 10);
    }

    [Fact]
    public async Task A_no_sync_export_copied_by_the_kernel_equals_the_disk_and_is_as_sparse_as_a_durable_one()
    {
        using var dir = new TempDirectory("export");
        var model = MakeImage(dir.File("d.img"), 48L << 20, 25);
        await AssertNoSyncExportAsync(dir.File("d.img"), dir, model);
    }

    [RequiresMountFact]
    public async Task A_no_sync_export_from_another_file_system_writes_what_the_kernel_refuses_to_copy()
    {
        // copy_file_range between two mounts (a tmpfs and the temp folder) fails with EXDEV: every byte then comes
        // from the export's own buffer.
        using var fs = SmallFileSystem.TryMount(64)!;
        using var dir = new TempDirectory("export");
        var model = MakeImage(fs.File("d.img"), 40L << 20, 26);
        await AssertNoSyncExportAsync(fs.File("d.img"), dir, model);
    }

    // Exports image without and with fsync: both equal the model, and the --no-sync one has as few blocks allocated
    // (zero pieces left as holes) as the durable one, give or take a few blocks of the file system's own.
    private static async Task AssertNoSyncExportAsync(string image, TempDirectory dir, byte[] model)
    {
        using var chain = DiskImage.Open(image);
        await RawExport.ExportToFileAsync(chain, dir.File("fast.raw"), durable: false);
        await RawExport.ExportToFileAsync(chain, dir.File("durable.raw"));
        Assert.Equal(ContentHash.Of(model), ContentHash.OfFile(dir.File("fast.raw")));
        Assert.Equal(ContentHash.Of(model), ContentHash.OfFile(dir.File("durable.raw")));
        long durable = VerbScenarios.AllocatedBytes(dir.File("durable.raw"));
        Assert.InRange(VerbScenarios.AllocatedBytes(dir.File("fast.raw")), durable - (64 << 10), durable + (64 << 10));
    }

    [Fact]
    public async Task Cancellation_deletes_the_partial_output()
    {
        using var dir = new TempDirectory("export");
        MakeImage(dir.File("d.img"), 64L << 20, 22);
        using var chain = DiskImage.Open(dir.File("d.img"));
        using var cts = new CancellationTokenSource();
        // Cancel from inside the export, once it has really started.
        var progress = new SyncProgress(r => { if (r.Done > 0) cts.Cancel(); });
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
            RawExport.ExportToFileAsync(chain, dir.File("out.raw"), progress: progress, cancel: cts.Token));
        Assert.False(File.Exists(dir.File("out.raw")));
    }

    [Fact]
    public async Task A_failing_output_stream_is_an_io_error_and_does_not_hang()
    {
        using var dir = new TempDirectory("export");
        MakeImage(dir.File("d.img"), 32L << 20, 23);
        using var chain = DiskImage.Open(dir.File("d.img"));
        var ex = await Assert.ThrowsAsync<DiskSnapshotEngine.Errors.DiskImageException>(() =>
            RawExport.ExportToStreamAsync(chain, new FailingStream(5 << 20)).WaitAsync(TimeSpan.FromMinutes(1)));
        Assert.Equal(DiskSnapshotEngine.Errors.ErrorKind.Io, ex.Kind);
    }

    private sealed class SyncProgress(Action<OperationProgress> onReport) : IProgress<OperationProgress>
    {
        public void Report(OperationProgress value) => onReport(value);
    }

    /// <summary>A pipe whose reader goes away after <c>limit</c> bytes (EPIPE).</summary>
    private sealed class FailingStream(long limit) : Stream
    {
        private long _written;
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => _written; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));
        public override void Write(ReadOnlySpan<byte> buffer)
        {
            _written += buffer.Length;
            if (_written > limit) throw new IOException("Broken pipe");
        }
    }
}
