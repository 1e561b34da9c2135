using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Operations;
using DiskSnapshotEngine.Tests.Infrastructure;
using DiskSnapshotEngine.Tests.Operations;
using static DiskSnapshotEngine.Tests.Formats.Qcow2.Qcow2TestKit;

namespace DiskSnapshotEngine.Tests.Formats.Qcow2;

/// <summary>
/// Compact of a qemu-compressed qcow2 keeps its compressed clusters compressed (copied as stored, packed, refcounted as
/// qemu counts them): qemu-img check is clean, qemu-img compare finds the same content, the file stays about as
/// small as qemu made it, and qemu then writes over the packed clusters with its refcounts right.
/// </summary>
public sealed class Qcow2CompactCompressedTests
{
    private const long Size = 16L * MiB;

    private static int EncodedClusters(string image)
    {
        using var chain = DiskImage.Open(image);
        return (int)chain.GetExtents(0, chain.VirtualSize).Where(e => e.IsEncoded).Sum(e => (e.Length + chain.Top.BlockSize - 1) / chain.Top.BlockSize);
    }

    // Text compresses to about three quarters: two compressed clusters do not fit in one host cluster, so packing
    // across host clusters is what keeps the file small.
    internal static string TextRaw(string path, int seed)
    {
        var rng = new Random(seed);
        var bytes = new byte[Size];
        var text = System.Text.Encoding.ASCII.GetBytes(Convert.ToBase64String(RandomData.Bytes((int)(Size * 3 / 4) - 3 * MiB, seed)));
        text.CopyTo(bytes, rng.Next(0, MiB) & ~511);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    [RequiresToolTheory("qemu-img", "qemu-io")]
    [InlineData("cluster_size=64k", false)]
    [InlineData("cluster_size=4k", false)]
    [InlineData("extended_l2=on,cluster_size=32k", false)]
    [InlineData("cluster_size=64k", true)]
    public async Task Compressed_clusters_stay_compressed_and_qemu_agrees(string options, bool overlay)
    {
        using var dir = new TempDirectory("qcow2-compact-c");
        string raw = TextRaw(dir.File("text.raw"), options.Length);
        string image = dir.File("c.qcow2");
        if (overlay)
        {
            MakeRaw(dir.File("base.raw"), Size, 3);
            QemuImg("create", "-f", "qcow2", "-o", options, "-b", "base.raw", "-F", "raw", image, Size.ToString());
            // Compressed clusters in a child, over a backing file that other clusters still show.
            QemuIo(image, "write -c -P 0x31 0 64k", "write -c -P 0x32 128k 64k", "write -c -P 0x33 1M 64k");
        }
        else QemuImg("convert", "-c", "-f", "raw", "-O", "qcow2", "-o", options, raw, image);
        // Some plain data and zeroes too, over compressed clusters.
        QemuIo(image, "write -P 0x5a 200k 100k", "write -z 3M 64k");
        string reference = dir.File("reference.qcow2");
        File.Copy(image, reference);
        long before = new FileInfo(image).Length;
        int encoded = EncodedClusters(image);
        Assert.True(encoded > 2, $"the image has only {encoded} compressed clusters");

        var reports = new List<OperationProgress>();
        await Compact.RunAsync(image, null, new SyncProgress(reports.Add));

        // The clusters copied as stored count too: progress ends at the total (it stopped short of it by them before).
        Assert.True(reports.Count > 0, "no progress was reported");
        Assert.True(reports[^1].Done == reports[^1].Total, $"the last progress report is {reports[^1].Done} of {reports[^1].Total}");
        AssertQemuCheckClean(image);
        using (var compacted = DiskImage.Open(image)) AssertClean(compacted.Check());
        var (code, o, e) = ExternalTool.Run("qemu-img", "compare", image, reference);
        Assert.True(code == 0, $"qemu-img compare: {o}{e}");
        Assert.Equal(encoded, EncodedClusters(image));
        long after = new FileInfo(image).Length;
        // Each copied cluster starts on a sector: at most 512 bytes more each, and a little metadata.
        Assert.True(after <= before + encoded * 512L + 4 * 65536, $"compact grew {before} to {after} bytes for {encoded} compressed clusters");
        // qemu overwrites and discards packed clusters: the refcounts it finds are the ones it keeps.
        QemuIo(image, "write -P 0x66 0 1M", "discard 4M 1M");
        AssertQemuCheckClean(image);
    }

    [RequiresToolFact("qemu-img")]
    public async Task A_cancelled_compact_leaves_the_original_and_a_rerun_writes_nothing_into_it()
    {
        using var dir = new TempDirectory("qcow2-compact-c");
        string image = dir.File("c.qcow2");
        QemuImg("convert", "-c", "-f", "raw", "-O", "qcow2", TextRaw(dir.File("text.raw"), 9), image);
        var original = File.ReadAllBytes(image);
        using (var cts = new CancellationTokenSource())
        {
            cts.Cancel();
            var cancelled = await Assert.ThrowsAsync<DiskImageException>(() => Compact.RunAsync(image, null, null, cts.Token));
            Assert.Equal(ErrorKind.Cancelled, cancelled.Kind);
        }
        Assert.Equal(original, File.ReadAllBytes(image));
        Assert.False(File.Exists(image + Compact.TempSuffix));
        // Nothing reaches the original through the opener: only the temporary file is written before the rename.
        var plan = new CrashPlan { CrashAtWrite = 0 };
        await Compact.RunAsync(image, OpenOptions.ReadOnly with { FileOpener = plan.Opener });
        Assert.Equal(0, plan.Writes);
        AssertQemuCheckClean(image);
        Assert.True(new FileInfo(image).Length < original.Length + original.Length / 20);
    }

    private sealed class SyncProgress(Action<OperationProgress> onReport) : IProgress<OperationProgress>
    {
        public void Report(OperationProgress value) => onReport(value);
    }
}
