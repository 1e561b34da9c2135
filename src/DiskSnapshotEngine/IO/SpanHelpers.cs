namespace DiskSnapshotEngine.IO;

/// <summary>Vectorised byte checks used on hot paths (zero detection decides between ZERO state and allocation).</summary>
internal static class SpanHelpers
{
    /// <summary>True when every byte is zero.</summary>
    public static bool IsAllZero(ReadOnlySpan<byte> data) => data.IndexOfAnyExcept((byte)0) < 0;

    /// <summary>Rounds <paramref name="value"/> down to a multiple of <paramref name="alignment"/> (a power of two or any positive value).</summary>
    public static long AlignDown(long value, long alignment) => value - (value % alignment);

    /// <summary>Rounds <paramref name="value"/> up to a multiple of <paramref name="alignment"/>.</summary>
    public static long AlignUp(long value, long alignment) => checked(AlignDown(value + alignment - 1, alignment));
}
