using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Nbd;

/// <summary>Chains for the NBD tests: a base and differencing children, each with its own writes, zero ranges and holes.</summary>
public static class NbdTestImages
{
    /// <summary>
    /// Builds <paramref name="layers"/> images (base first) of format <paramref name="extension"/> in <paramref name="dir"/>.
    /// Each layer writes a few random runs (some unaligned, some crossing blocks) and one zeroed range, so the chain's
    /// map has data from every layer, ZERO state over parent data, and absent ranges.
    /// </summary>
    /// <returns>The paths, base first; the last one is the top.</returns>
    public static List<string> Chain(string dir, string extension, int layers, long size, int blockSize, int seed)
    {
        var rng = new Random(seed);
        var paths = new List<string>();
        for (int i = 0; i < layers; i++)
        {
            string path = Path.Combine(dir, $"layer{i}.{extension}");
            if (i == 0) DiskImage.Create(path, new ImageCreateOptions(size, BlockSize: extension == "img" ? null : blockSize)).Dispose(); // raw: no blocks
            else DiskImage.CreateDifferencing(path, paths[^1]).Dispose();
            paths.Add(path);
            using var chain = DiskImage.Open(path, OpenOptions.ReadWrite);
            for (int w = 0; w < 4; w++)
            {
                int length = rng.Next(1, 3 * blockSize);
                long offset = rng.NextInt64(0, size - length);
                chain.Write(offset, RandomData.Bytes(length, rng.Next()));
            }
            long zeroAt = rng.NextInt64(0, size / blockSize - 2) * blockSize;
            chain.WriteZeroes(zeroAt, 2L * blockSize);
        }
        return paths;
    }

    /// <summary>The whole virtual disk as the chain reads it.</summary>
    public static byte[] ReadAll(DiskChain chain)
    {
        var all = new byte[chain.VirtualSize];
        chain.Read(0, all);
        return all;
    }
}
