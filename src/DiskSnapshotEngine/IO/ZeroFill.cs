namespace DiskSnapshotEngine.IO;

/// <summary>
/// Writes a run of zeros in chunks of at most 1 MiB from one pooled buffer: the one loop that every layer, the chain
/// and the VHDX log use to zero a range, so memory stays bounded whatever the run's length.
/// </summary>
internal static class ZeroFill
{
    /// <summary>Largest chunk handed to the writer.</summary>
    public const int MaxChunk = 1 << 20;

    /// <summary>Where the zeros go: a file, an in-memory overlay or a chain.</summary>
    public delegate void Writer(ReadOnlySpan<byte> zeros, long offset);

    /// <summary>Hands <paramref name="write"/> consecutive zero chunks covering [<paramref name="offset"/>, +<paramref name="length"/>).</summary>
    public static void Run(long offset, long length, Writer write)
    {
        if (length <= 0) return;
        using var zeros = AlignedBufferPool.Rent((int)Math.Min(length, MaxChunk));
        var span = zeros.Span[..(int)Math.Min(zeros.Capacity, MaxChunk)];
        span.Clear();
        while (length > 0)
        {
            int n = (int)Math.Min(length, span.Length);
            write(span[..n], offset);
            offset += n;
            length -= n;
        }
    }

    /// <summary>Writes <paramref name="length"/> zero bytes into the file at <paramref name="offset"/>.</summary>
    public static void WriteZeros(this IImageFile file, long offset, long length) => Run(offset, length, file.Write);
}
