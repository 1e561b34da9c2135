namespace DiskSnapshotEngine.Tests.Infrastructure;

/// <summary>
/// The one source of test data that should not compress or repeat: the same seed gives the same bytes in every test
/// and on every run (System.Random with a seed is deterministic), so a failure replays.
/// </summary>
public static class RandomData
{
    /// <summary><paramref name="length"/> bytes drawn from <paramref name="seed"/>.</summary>
    public static byte[] Bytes(int length, int seed)
    {
        var data = new byte[length];
        Fill(data, seed);
        return data;
    }

    /// <summary>Fills <paramref name="buffer"/> with the bytes <see cref="Bytes"/> gives for its length and seed.</summary>
    public static void Fill(Span<byte> buffer, int seed) => new Random(seed).NextBytes(buffer);
}
