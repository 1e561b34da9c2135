using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Formats.Vhd;

/// <summary>
/// VHD specification "Block Allocation Table and Data Blocks", sector bitmap: each block starts with one bit per
/// sector, padded to a 512-byte boundary; the most significant bit of the first byte is the block's first sector. A set
/// bit means the sector is in this file (a differencing disk reads a clear one from its parent; a dynamic disk reads it
/// as zeros). Bitmaps are read on demand into a bounded cache; updates write only the 512-byte bitmap sectors that change,
/// each on its own, so any subset of them reaching the disk is still a consistent bitmap.
/// </summary>
internal sealed class VhdSectorBitmaps
{
    private const int CacheBytes = 1 << 20;

    private readonly IImageFile _file;
    private readonly int _bytes;
    private readonly BoundedCache<long, byte[]> _cache;

    /// <param name="file">The image file.</param>
    /// <param name="bytes">Bitmap size in the file (padded to 512).</param>
    public VhdSectorBitmaps(IImageFile file, int bytes)
    {
        _file = file;
        _bytes = bytes;
        _cache = new BoundedCache<long, byte[]>(Math.Max(4, CacheBytes / bytes));
    }

    /// <summary>Bitmap bytes for a block of <paramref name="blockSize"/> bytes, padded to a sector.</summary>
    public static int SizeFor(long blockSize) => (int)SpanHelpers.AlignUp((blockSize / 512 + 7) / 8, 512);

    /// <summary>The bitmap that starts at <paramref name="fileOffset"/> (a cached copy: do not modify it).</summary>
    public byte[] Get(long fileOffset) => _cache.GetOrLoad(fileOffset, at =>
    {
        var bitmap = new byte[_bytes];
        _file.ReadExactly(bitmap, at, "sector bitmap");
        return bitmap;
    });

    /// <summary>Records a bitmap just written (a new block).</summary>
    public void Put(long fileOffset, byte[] bitmap) => _cache.Set(fileOffset, bitmap);

    /// <summary>Sets the bits of sectors [<paramref name="first"/>, <paramref name="end"/>) and writes the changed bitmap sectors (not flushed).</summary>
    public void SetRange(long fileOffset, int first, int end)
    {
        var old = Get(fileOffset);
        var bitmap = (byte[])old.Clone();
        int firstByte = first / 8, endByte = (end + 7) / 8;
        for (int s = first; s < end; s++) bitmap[s / 8] |= (byte)(0x80 >> (s % 8));
        for (int sector = firstByte / 512 * 512; sector < endByte; sector += 512)
        {
            var now = bitmap.AsSpan(sector, 512);
            if (!now.SequenceEqual(old.AsSpan(sector, 512))) _file.Write(now, fileOffset + sector);
        }
        Put(fileOffset, bitmap);
    }

    public static bool IsSet(ReadOnlySpan<byte> bitmap, int sector) => (bitmap[sector / 8] & (0x80 >> (sector % 8))) != 0;

    /// <summary>True when every sector in [<paramref name="first"/>, <paramref name="end"/>) is set.</summary>
    public static bool AllSet(ReadOnlySpan<byte> bitmap, int first, int end) => RunLength(bitmap, first, end) == end - first && IsSet(bitmap, first);

    /// <summary>How many sectors from <paramref name="first"/> (before <paramref name="end"/>) have the same bit as it.</summary>
    public static int RunLength(ReadOnlySpan<byte> bitmap, int first, int end)
    {
        bool set = IsSet(bitmap, first);
        int s = first + 1;
        // Whole bytes at once once aligned: a fully written block is one run found in a few comparisons.
        while (s < end)
        {
            if (s % 8 == 0 && s + 8 <= end)
            {
                var bytes = bitmap[(s / 8)..(end / 8)];
                int other = set ? bytes.IndexOfAnyExcept((byte)0xFF) : bytes.IndexOfAnyExcept((byte)0);
                if (other < 0) { s = end / 8 * 8; continue; }
                s += other * 8;
                if (s >= end) break;
            }
            if (IsSet(bitmap, s) != set) break;
            s++;
        }
        return Math.Min(s, end) - first;
    }
}
