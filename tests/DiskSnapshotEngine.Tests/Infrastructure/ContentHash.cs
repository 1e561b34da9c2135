using System.Security.Cryptography;
using DiskSnapshotEngine.Block;

namespace DiskSnapshotEngine.Tests.Infrastructure;

/// <summary>
/// The one way the tests hash content: SHA-256 as lowercase hex, as ../shared/fixtures/README.md and
/// fixtures/reference/manifest.tsv and fixtures/shared.tsv write it, so a string from there compares with what a test computes.
/// </summary>
public static class ContentHash
{
    private const int Piece = 1 << 20;

    /// <summary>Hash of bytes in memory.</summary>
    public static string Of(ReadOnlySpan<byte> bytes) => Convert.ToHexStringLower(SHA256.HashData(bytes));

    /// <summary>Hash of a file's bytes (streamed, so a large sparse file costs no memory).</summary>
    public static string OfFile(string path)
    {
        using var f = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(f));
    }

    /// <summary>
    /// Hash of the whole virtual disk: walks the chain's extents and reads every byte of each, zero extents too, in
    /// 1 MiB pieces (so both the map and the read path of the chain are exercised, and a map that skips a range
    /// changes the hash).
    /// </summary>
    public static string Of(DiskChain chain)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[Piece];
        foreach (var extent in chain.GetExtents(0, chain.VirtualSize))
        {
            for (long at = extent.Offset; at < extent.End; at += Piece)
            {
                int n = (int)Math.Min(Piece, extent.End - at);
                chain.Read(at, buffer.AsSpan(0, n));
                sha.AppendData(buffer, 0, n);
            }
        }
        return Convert.ToHexStringLower(sha.GetHashAndReset());
    }
}
