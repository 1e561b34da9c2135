using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;
using static DiskSnapshotEngine.Formats.Vhdx.VhdxConstants;

namespace DiskSnapshotEngine.Formats.Vhdx;

/// <summary>
/// The sector bitmap blocks of a differencing VHDX (MS-VHDX 2.5): one 1 MiB block per chunk, bit i%8 of byte i/8
/// belonging to sector i of the chunk; 1 = present in this file, 0 = read from the parent. Pages are read and changed
/// as 4 KiB sectors through the layer's <see cref="VhdxSectorCache"/>, so changes reach the file through the log.
/// </summary>
internal sealed class VhdxSectorBitmap
{
    private readonly string _path;
    private readonly VhdxBat _bat;
    private readonly VhdxSectorCache _sectors;
    private readonly long _logicalSectorSize, _blockSize;
    private readonly Func<long, long> _allocate;

    /// <param name="path">The file's path, for errors.</param>
    /// <param name="bat">The file's BAT (sector bitmap entries).</param>
    /// <param name="sectors">The layer's metadata sector cache.</param>
    /// <param name="logicalSectorSize">LogicalSectorSize: one bit per logical sector.</param>
    /// <param name="blockSize">BlockSize of the payload blocks.</param>
    /// <param name="allocate">Gives fresh 1 MiB-aligned space past everything mapped: size in, file offset out.</param>
    public VhdxSectorBitmap(string path, VhdxBat bat, VhdxSectorCache sectors, int logicalSectorSize, long blockSize, Func<long, long> allocate)
    {
        _path = path;
        _bat = bat;
        _sectors = sectors;
        _logicalSectorSize = logicalSectorSize;
        _blockSize = blockSize;
        _allocate = allocate;
    }

    /// <summary>
    /// The run of sectors from <paramref name="pos"/> that share one bit value, up to <paramref name="limit"/> (inside
    /// one block, hence one chunk), for a PAYLOAD_BLOCK_PARTIALLY_PRESENT block.
    /// </summary>
    public (bool Present, long RunEnd) RunAt(long pos, long limit)
    {
        long ls = _logicalSectorSize;
        long sector = pos / ls;
        long lastSector = (limit - 1) / ls;
        long chunk = sector / SectorsPerBitmapBlock;
        var sb = _bat.Bitmap(chunk);
        if (sb.State != VhdxBatEntry.SbPresent)
            ThrowHelper.Corrupt(_path, "BAT entry", _bat.EntryOffset(_bat.BitmapIndex(chunk)),
                $"a PAYLOAD_BLOCK_PARTIALLY_PRESENT block needs sector bitmap block {chunk}, which is not present");
        bool? first = null;
        long s = sector;
        while (s <= lastSector)
        {
            long inChunk = s % SectorsPerBitmapBlock;
            long pageOffset = SpanHelpers.AlignDown(inChunk / 8, 4096);
            var page = _sectors.Get(sb.FileOffset + pageOffset, "sector bitmap");
            long pageBase = s - inChunk + pageOffset * 8;
            long pageLast = Math.Min(lastSector, pageBase + 4096 * 8 - 1);
            while (s <= pageLast)
            {
                long bit = s - pageBase;
                byte b = page[bit / 8];
                bool v = (b >> (int)(bit % 8) & 1) != 0;
                first ??= v;
                if (v != first) return (first.Value, s * ls);
                if (bit % 8 == 0 && s + 7 <= pageLast && b == (v ? 0xFF : 0x00))
                {
                    s += 8;
                    continue;
                }
                s++;
            }
        }
        return (first!.Value, Math.Min(limit, s * ls));
    }

    /// <summary>True when logical sector <paramref name="sector"/> is present in this file.</summary>
    public bool IsPresent(long sector)
    {
        var sb = _bat.Bitmap(sector / SectorsPerBitmapBlock);
        if (sb.State != VhdxBatEntry.SbPresent) return false;
        long inChunk = sector % SectorsPerBitmapBlock;
        var page = _sectors.Get(sb.FileOffset + SpanHelpers.AlignDown(inChunk / 8, 4096), "sector bitmap");
        return (page[(inChunk / 8) % 4096] >> (int)(inChunk % 8) & 1) != 0;
    }

    /// <summary>Maps a sector bitmap block for <paramref name="chunk"/> when it has none.</summary>
    public void Ensure(long chunk)
    {
        var sb = _bat.Bitmap(chunk);
        if (sb.State == VhdxBatEntry.SbPresent) return;
        // A new sector bitmap block is fresh zeroed space; only the sectors we set bits in are written, through the log.
        long off = _allocate(SectorBitmapBlockSize);
        _bat.Write(_bat.BitmapIndex(chunk), VhdxBatEntry.Make(VhdxBatEntry.SbPresent, off));
    }

    /// <summary>
    /// A block becoming PARTIALLY_PRESENT must start with no sector present: bits another writer left behind for a
    /// NOT_PRESENT block would otherwise expose the fresh (zero) payload instead of the parent's data.
    /// </summary>
    public void ClearBlock(long block)
    {
        long ls = _logicalSectorSize;
        long first = block * _blockSize / ls;
        long count = _bat.BlockExtent(block) / ls;
        var sb = _bat.Bitmap(first / SectorsPerBitmapBlock);
        // Blocks hold a multiple of 8 sectors and start on a byte of the bitmap (block size >= 1 MiB).
        long byteStart = first % SectorsPerBitmapBlock / 8, byteEnd = byteStart + SpanHelpers.AlignUp(count, 8) / 8;
        for (long page = SpanHelpers.AlignDown(byteStart, 4096); page < byteEnd; page += 4096)
        {
            int s = (int)(Math.Max(byteStart, page) - page), e = (int)(Math.Min(byteEnd, page + 4096) - page);
            if (_sectors.Get(sb.FileOffset + page, "sector bitmap").AsSpan(s, e - s).IndexOfAnyExcept((byte)0) < 0) continue;
            _sectors.GetForWrite(sb.FileOffset + page, "sector bitmap").AsSpan(s, e - s).Clear();
        }
    }

    /// <summary>Marks every logical sector [<paramref name="offset"/>, +<paramref name="length"/>) touches as present.</summary>
    public void Set(long offset, long length)
    {
        long ls = _logicalSectorSize;
        long first = offset / ls, last = (offset + length - 1) / ls;
        long s = first;
        while (s <= last)
        {
            long chunk = s / SectorsPerBitmapBlock;
            Ensure(chunk);
            var sb = _bat.Bitmap(chunk);
            long inChunk = s % SectorsPerBitmapBlock;
            long pageOffset = SpanHelpers.AlignDown(inChunk / 8, 4096);
            var page = _sectors.GetForWrite(sb.FileOffset + pageOffset, "sector bitmap");
            long pageFirst = s - (inChunk - pageOffset * 8);
            long pageLast = Math.Min(last, pageFirst + 4096 * 8 - 1);
            for (; s <= pageLast; s++)
            {
                long bit = s - pageFirst;
                page[bit / 8] |= (byte)(1 << (int)(bit % 8));
            }
        }
    }
}
