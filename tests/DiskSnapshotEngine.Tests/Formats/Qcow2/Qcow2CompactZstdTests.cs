using System.Buffers.Binary;
using System.Text.Json;
using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;
using Xunit.Abstractions;
using static DiskSnapshotEngine.Tests.Formats.Qcow2.Qcow2TestKit;

namespace DiskSnapshotEngine.Tests.Formats.Qcow2;

/// <summary>
/// Compact of a qcow2 whose clusters qemu compressed with zstd (compression_type 1, qcow2.txt "Header") keeps them
/// compressed, as zlib ones are: the new image carries compression_type 1 with its incompatible bit, and qemu finds it
/// clean, with the same content, as many compressed clusters and no growth.
/// </summary>
public sealed class Qcow2CompactZstdTests(ITestOutputHelper output)
{
    private const long Size = 16L * MiB;

    [RequiresQemuZstdFact]
    public async Task Zstd_compressed_clusters_stay_compressed_and_qemu_agrees()
    {
        using var dir = new TempDirectory("qcow2-compact-zstd");
        string raw = Qcow2CompactCompressedTests.TextRaw(dir.File("text.raw"), 11);
        string image = dir.File("z.qcow2");
        QemuImg("convert", "-c", "-f", "raw", "-O", "qcow2", "-o", "compression_type=zstd", raw, image);
        // Plain data and zeroes over 32 compressed clusters: qemu leaves their bytes as holes that compact gives back.
        QemuIo(image, "write -P 0x5a 0 1M", "write -z 3M 1M");
        string reference = dir.File("reference.qcow2");
        File.Copy(image, reference);
        long before = new FileInfo(image).Length;
        int compressedBefore = CompressedClusters(image);
        Assert.True(compressedBefore > 2, $"qemu made only {compressedBefore} compressed clusters");

        await CliRunner.OkAsync("compact", image);

        long after = new FileInfo(image).Length;
        int compressedAfter = CompressedClusters(image);
        output.WriteLine($"zstd image: {before} bytes, {compressedBefore} compressed clusters before compact; {after} bytes, {compressedAfter} after");
        AssertQemuCheckClean(image);
        var (code, o, e) = ExternalTool.Run("qemu-img", "compare", image, reference);
        Assert.True(code == 0, $"qemu-img compare: {o}{e}");
        Assert.Contains("\"compression-type\": \"zstd\"", QemuImg("info", "--output=json", image));
        var header = new byte[112];
        using (var f = File.OpenRead(image)) f.ReadExactly(header);
        Assert.True(BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(100)) >= 112, "header_length does not hold compression_type");
        Assert.Equal(1, header[104]);
        Assert.NotEqual(0UL, BinaryPrimitives.ReadUInt64BigEndian(header.AsSpan(72)) & (1UL << 3)); // compression type bit
        Assert.Equal(compressedBefore, compressedAfter);
        Assert.True(after <= before, $"compact grew the zstd image from {before} to {after} bytes");
    }

    // qemu-img check counts the compressed clusters (qemu-img map does not show them in this qemu's JSON).
    private static int CompressedClusters(string image)
    {
        using var doc = JsonDocument.Parse(QemuImg("check", "--output=json", image));
        return doc.RootElement.TryGetProperty("compressed-clusters", out var n) ? n.GetInt32() : 0;
    }
}

/// <summary>A fact skipped, with the reason, when qemu-img is missing or built without zstd.</summary>
public sealed class RequiresQemuZstdFactAttribute : FactAttribute
{
    private static readonly Lazy<string?> s_reason = new(Probe);

    public RequiresQemuZstdFactAttribute() => Skip = s_reason.Value;

    private static string? Probe()
    {
        if (RequiresTool.Reason(["qemu-img", "qemu-io"]) is { } missing) return missing;
        string probe = Path.Combine(Path.GetTempPath(), $"dse-zstd-probe-{Guid.NewGuid():N}.qcow2");
        try
        {
            var (code, _, stderr) = ExternalTool.Run("qemu-img", "create", "-q", "-f", "qcow2", "-o", "compression_type=zstd", probe, "1M");
            return code == 0 ? null : $"this qemu-img cannot make zstd-compressed qcow2 images: {stderr.Trim()}";
        }
        finally { File.Delete(probe); }
    }
}
