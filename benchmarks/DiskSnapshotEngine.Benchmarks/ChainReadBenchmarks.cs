using BenchmarkDotNet.Attributes;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Benchmarks;

/// <summary>
/// Sequential read of a whole disk through chains of depth 1 (a plain dynamic image), 8 and 32, in 4 MiB requests.
/// The base holds 128 MiB of data in a 256 MiB disk; each child overrides 64 KiB in every 4 MiB.
/// </summary>
[MemoryDiagnoser]
public class ChainReadBenchmarks
{
    private BenchmarkImages? _images;
    private string _top = "";

    [Params(".vhdx", ".vdi")]
    public string Format { get; set; } = ".vhdx";

    [Params(1, 8, 32)]
    public int Depth { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _images = new BenchmarkImages("chain");
        var basePath = _images.CreateBase("base" + Format, 256L << 20, 128L << 20, 2L << 20, Format == ".vhdx" ? 2 << 20 : null);
        _top = _images.CreateChain(basePath, Depth, Format);
    }

    [Benchmark]
    public long SequentialRead()
    {
        using var chain = DiskImage.Open(_top);
        using var buffer = AlignedBufferPool.Rent(4 << 20);
        long checksum = 0;
        for (long off = 0; off < chain.VirtualSize; off += buffer.Capacity)
        {
            var span = buffer.Span[..(int)Math.Min(buffer.Capacity, chain.VirtualSize - off)];
            chain.Read(off, span);
            checksum += span[0];
        }
        return checksum;
    }

    [GlobalCleanup]
    public void Cleanup() => _images?.Dispose();
}
