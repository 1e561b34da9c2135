using System.Security.Cryptography;
using DiskSnapshotEngine.Block;

namespace DiskSnapshotEngine.Tests.Formats.Vhdx;

internal static class VhdxTestUtil
{
    private static readonly byte[] s_zeros = new byte[1 << 20];

    /// <summary>sha256 of the whole virtual disk as the chain shows it (zero extents hashed without reading).</summary>
    public static string ContentSha256(DiskChain chain)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buf = new byte[1 << 20];
        foreach (var e in chain.GetExtents(0, chain.VirtualSize))
        {
            long pos = e.Offset;
            while (pos < e.End)
            {
                int n = (int)Math.Min(buf.Length, e.End - pos);
                if (e.Kind == ExtentKind.Data)
                {
                    chain.Read(pos, buf.AsSpan(0, n));
                    hash.AppendData(buf, 0, n);
                }
                else hash.AppendData(s_zeros, 0, n);
                pos += n;
            }
        }
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    public static string FileSha256(string path)
    {
        using var s = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(s));
    }

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
