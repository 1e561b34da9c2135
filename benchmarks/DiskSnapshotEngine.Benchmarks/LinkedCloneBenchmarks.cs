using BenchmarkDotNet.Attributes;

namespace DiskSnapshotEngine.Benchmarks;

/// <summary>
/// A linked clone must cost the same whatever the parent's size (acceptance: median for a 64 GiB parent within 1.5x of
/// the median for a 64 MiB parent). Both parents hold data (sparse files keep the 64 GiB one cheap to make).
/// </summary>
public class LinkedCloneBenchmarks
{
    private BenchmarkImages? _images;
    private string _parent = "";
    private int _n;

    [Params(".vhdx", ".vdi")]
    public string Format { get; set; } = ".vhdx";

    [Params(64L << 20, 64L << 30)]
    public long ParentSize { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _images = new BenchmarkImages("linked");
        // 16 MiB of data spread over the whole disk.
        _parent = _images.CreateBase("parent" + Format, ParentSize, 16L << 20, ParentSize / 16);
    }

    [Benchmark]
    public void CreateLinkedClone()
    {
        var child = _images!.File($"child{_n++}{Format}");
        DiskImage.CreateDifferencing(child, _parent).Dispose();
        File.Delete(child);
    }

    [GlobalCleanup]
    public void Cleanup() => _images?.Dispose();
}
