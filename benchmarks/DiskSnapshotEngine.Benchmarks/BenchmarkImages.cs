using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Formats;

namespace DiskSnapshotEngine.Benchmarks;

/// <summary>Builds the images the benchmarks read, in a temporary folder deleted afterwards.</summary>
internal sealed class BenchmarkImages : IDisposable
{
    public BenchmarkImages(string name)
    {
        Directory = Path.Combine(Path.GetTempPath(), $"dse-bench-{name}-{Guid.NewGuid():N}");
        System.IO.Directory.CreateDirectory(Directory);
    }

    public string Directory { get; }

    public string File(string name) => Path.Combine(Directory, name);

    /// <summary>A base image with <paramref name="dataBytes"/> of pseudo-random data spread in 1 MiB runs every <paramref name="stride"/> bytes.</summary>
    public string CreateBase(string name, long size, long dataBytes, long stride, int? blockSize = null)
    {
        var path = File(name);
        using var layer = DiskImage.Create(path, new ImageCreateOptions(size, ImageType.Dynamic, blockSize));
        using var chain = new DiskChain(new[] { layer });
        var run = new byte[1 << 20];
        new Random(42).NextBytes(run);
        long written = 0;
        for (long off = 0; off + run.Length <= size && written < dataBytes; off += stride)
        {
            chain.Write(off, run);
            written += run.Length;
        }
        chain.Flush();
        return path;
    }

    /// <summary>A chain of <paramref name="depth"/> layers over <paramref name="basePath"/>; each child writes 64 KiB every 4 MiB at its own offset.</summary>
    public string CreateChain(string basePath, int depth, string extension)
    {
        string parent = basePath;
        var data = new byte[64 << 10];
        for (int i = 1; i < depth; i++)
        {
            var child = File($"layer{i}{extension}");
            using (var layer = DiskImage.CreateDifferencing(child, parent))
            {
                layer.Dispose();
            }
            using (var chain = DiskImage.Open(child, OpenOptions.ReadWrite))
            {
                new Random(i).NextBytes(data);
                for (long off = (long)i * 65536 % (4 << 20); off + data.Length <= chain.VirtualSize; off += 4 << 20)
                    chain.Write(off, data);
                chain.Flush();
            }
            parent = child;
        }
        return parent;
    }

    public void Dispose()
    {
        try { System.IO.Directory.Delete(Directory, recursive: true); }
        catch (IOException) { }
    }
}
