using BenchmarkDotNet.Attributes;
using DiskSnapshotEngine.Operations;

namespace DiskSnapshotEngine.Benchmarks;

/// <summary>
/// Full clone throughput, in process (no start-up cost): 256 MiB of data spread over a 4 GiB dynamic image, cloned
/// to the same format and across formats. Each clone is durable (staged with O_DIRECT, one fsync, renamed), so the
/// numbers track the copy loop and the disk, not the page cache. The side-by-side script compares the CLI with
/// qemu-img and cp on 2 GiB.
/// </summary>
public class FullCloneBenchmarks
{
    private BenchmarkImages? _images;
    private string _source = "";
    private int _n;

    [Params(".vhdx", ".vdi")]
    public string Source { get; set; } = ".vhdx";

    [Params(".vhdx", ".vdi")]
    public string Target { get; set; } = ".vdi";

    [GlobalSetup]
    public void Setup()
    {
        _images = new BenchmarkImages("clone");
        _source = _images.CreateBase("source" + Source, 4L << 30, 256L << 20, 16L << 20);
    }

    [Benchmark]
    public async Task Clone()
    {
        var clone = _images!.File($"clone{_n++}{Target}");
        await FullClone.RunAsync(_source, clone);
        File.Delete(clone);
    }

    [GlobalCleanup]
    public void Cleanup() => _images?.Dispose();
}
