using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Formats.Vhdx;

internal static class VhdxTestUtil
{
    /// <summary>Compares the chain with a raw file byte for byte (from <paramref name="from"/>, a multiple of 1 MiB, to the end).</summary>
    public static void AssertSameAsRaw(DiskChain chain, string rawPath, long from = 0)
    {
        using var raw = File.OpenRead(rawPath);
        Assert.Equal(raw.Length, chain.VirtualSize);
        var a = new byte[1 << 20];
        var b = new byte[1 << 20];
        for (long pos = from; pos < chain.VirtualSize; pos += a.Length)
        {
            int n = (int)Math.Min(a.Length, chain.VirtualSize - pos);
            chain.Read(pos, a.AsSpan(0, n));
            raw.Position = pos;
            raw.ReadExactly(b, 0, n);
            if (!a.AsSpan(0, n).SequenceEqual(b.AsSpan(0, n)))
            {
                int i = 0;
                while (a[i] == b[i]) i++;
                Assert.Fail($"content differs from {rawPath} at byte {pos + i}");
            }
        }
    }
}
