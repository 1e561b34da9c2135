using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;
using DiskSnapshotEngine.Operations;
using DiskSnapshotEngine.Tests.Infrastructure;
using FsCheck;
using FsCheck.Fluent;

namespace DiskSnapshotEngine.Tests.Operations;

public enum SegmentKind { Data, Zeros, Hole }

/// <summary>One run of the source disk: random data, zeros written into it, or never written.</summary>
public sealed record Segment(SegmentKind Kind, int Length, int Seed)
{
    public override string ToString() => $"{Kind}(+{Length})";
}

/// <summary>
/// The page-cache copy path (<c>export --no-sync</c>, <c>clone --no-sync</c>): pieces read into small buffers and
/// written from them, by one or several workers, into ranges allocated just before (<see cref="ImageFile.UseAllocatedWrites"/>). Random layouts
/// of data, written zeros and holes, crossing piece boundaries, must come out byte for byte, the export with a hole
/// wherever a 4 KiB piece is all zeros and no allocated space for them; a full disk and a cancellation publish nothing.
/// </summary>
public class NoSyncCopyTests
{
    private const int Granule = 4096;

    [Theory]
    [InlineData(".vhdx")]
    [InlineData(".qcow2")]
    public void Random_layouts_export_and_clone_without_sync_equal_the_source_with_holes_for_zeros(string ext)
    {
        var segment = from kind in Gen.Frequency((4, Gen.Constant(SegmentKind.Data)), (2, Gen.Constant(SegmentKind.Zeros)), (2, Gen.Constant(SegmentKind.Hole)))
                      from sectors in Gen.Frequency((3, Gen.Choose(1, 16)), (3, Gen.Choose(16, 1024)), (1, Gen.Choose(1024, 3072)))
                      from seed in Gen.Choose(1, int.MaxValue - 1)
                      select new Segment(kind, sectors * 512, seed);
        var layouts = from count in Gen.Choose(1, 24) from s in Gen.ArrayOf(segment, count) select s;
        Prop.ForAll(Arb.From(layouts, ScriptShrink.DropSteps), l => Run(ext, l)).Check(Config.QuickThrowOnFailure.WithMaxTest(12));
    }

    private static void Run(string ext, Segment[] layout)
    {
        using var dir = new TempDirectory("nosync");
        long size = Math.Max(1L << 20, layout.Sum(s => (long)s.Length) + 3 * 512);
        var model = new byte[size];
        string source = dir.File("src" + ext);
        OpsKit.CreateBase(source, size, ext == ".vhdx" ? 1 << 20 : null);
        using (var chain = DiskImage.Open(source, OpenOptions.ReadWrite))
        {
            long at = 0;
            foreach (var s in layout)
            {
                if (s.Kind != SegmentKind.Hole)
                {
                    var data = new byte[s.Length];
                    if (s.Kind == SegmentKind.Data) new Random(s.Seed).NextBytes(data);
                    chain.Write(at, data);
                    data.CopyTo(model, at);
                }
                at += s.Length;
            }
            chain.Flush();
        }

        // One worker, and more workers than pieces in flight could ever need (pieces then complete out of order).
        foreach (int workers in new[] { 1, 3 })
        {
            string output = dir.File($"out{workers}.raw");
            using (var chain = DiskImage.Open(source))
                RawExport.ExportToFileAsync(chain, output, false, null, durable: false, workers, default).GetAwaiter().GetResult();
            AssertExportSparse(model, output);
        }
        foreach (var target in new[] { ".vhdx", ".qcow2", ".raw", ".vdi" })
        {
            FullClone.RunAsync(source, dir.File("clone" + target), new CloneOptions { Durable = false }).GetAwaiter().GetResult();
            OpsKit.AssertContent(model, dir.File("clone" + target), $"the --no-sync clone to {target}");
        }
    }

    // Equal to the model; every all-zero 4 KiB piece of the file a hole, every other one data, and no more space
    // allocated than the non-zero pieces need (a range allocated but left unwritten would read as zeros yet take space).
    private static void AssertExportSparse(byte[] model, string path)
    {
        Assert.Equal(ContentHash.Of(model), ContentHash.OfFile(path));
        using var file = ImageFile.Open(path, writable: false);
        long nonZero = 0;
        for (long at = 0; at < model.Length; at += Granule)
        {
            int n = (int)Math.Min(Granule, model.Length - at);
            bool zero = SpanHelpers.IsAllZero(model.AsSpan((int)at, n));
            var (isData, _) = SparseProbe.RunAt(file, at, at + n);
            Assert.True(zero != isData, $"the 4 KiB piece at {at} is {(zero ? "zeros" : "data")} but the file has {(isData ? "data" : "a hole")} there");
            if (!zero) nonZero += Granule;
        }
        Assert.InRange(ImageFile.AllocatedBytes(path)!.Value, nonZero, nonZero + (64 << 10));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Cancellation_mid_copy_publishes_nothing(bool export)
    {
        using var dir = new TempDirectory("nosync");
        string source = dir.File("src.vhdx");
        var model = new byte[24 << 20];
        OpsKit.CreateBase(source, model.Length, 1 << 20);
        OpsKit.RandomWrites(source, new Random(171), 40, model);
        using var cts = new CancellationTokenSource();
        // Cancel from inside the copy once it has really started (a piece is done), not before it begins.
        var progress = new Progress(r => { if (r.Done > 0) cts.Cancel(); });
        string output = dir.File(export ? "out.raw" : "out.vhdx");
        if (export)
        {
            using var chain = DiskImage.Open(source);
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
                RawExport.ExportToFileAsync(chain, output, progress: progress, durable: false, cancel: cts.Token));
        }
        else
        {
            var e = await Assert.ThrowsAsync<DiskImageException>(() =>
                FullClone.RunAsync(source, output, new CloneOptions { Durable = false }, progress, cts.Token));
            Assert.Equal(ErrorKind.Cancelled, e.Kind);
        }
        Assert.True(cts.IsCancellationRequested);
        Assert.Equal(new[] { source }, Directory.GetFiles(dir.Path));
    }

    [RequiresMountFact]
    public async Task A_full_disk_is_disk_full_and_publishes_nothing()
    {
        using var fs = SmallFileSystem.TryMount(16)!;
        using var dir = new TempDirectory("nosync");
        string source = dir.File("src.vhdx");
        var model = new byte[40 << 20];
        OpsKit.CreateBase(source, model.Length, 1 << 20);
        OpsKit.RandomWrites(source, new Random(172), 60, model);
        var copy = new byte[24 << 20];
        new Random(173).NextBytes(copy);
        using (var chain = DiskImage.Open(source, OpenOptions.ReadWrite)) { chain.Write(8 << 20, copy); chain.Flush(); }

        using (var chain = DiskImage.Open(source))
        {
            var e = await Assert.ThrowsAsync<DiskImageException>(() => RawExport.ExportToFileAsync(chain, fs.File("out.raw"), durable: false));
            Assert.Equal(ErrorKind.DiskFull, e.Kind);
        }
        // The free-space check before a clone refuses at once here; with room for the data but not the copy it
        // would fail while writing: either way DiskFull and nothing published.
        var c = await Assert.ThrowsAsync<DiskImageException>(() => FullClone.RunAsync(source, fs.File("out.vhdx"), new CloneOptions { Durable = false }));
        Assert.Equal(ErrorKind.DiskFull, c.Kind);
        Assert.Empty(Directory.GetFiles(fs.Path));
    }

    private sealed class Progress(Action<OperationProgress> onReport) : IProgress<OperationProgress>
    {
        public void Report(OperationProgress value) => onReport(value);
    }
}
