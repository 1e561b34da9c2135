using System.Buffers.Binary;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Formats.Vdi;

/// <summary>
/// VDICore.h blocks array (paBlocks): one VDIIMAGEBLOCKPOINTER (uint32 block index in the data area) per virtual block,
/// or VDI_IMAGE_BLOCK_FREE / VDI_IMAGE_BLOCK_ZERO. Read lazily in 4 KiB pages (1024 entries) with a bounded cache,
/// so opening costs O(1) and memory stays bounded whatever cBlocks says. Writes go straight to the file (write-through).
/// </summary>
internal sealed class VdiBlockMap
{
    /// <summary>VDI_IMAGE_BLOCK_FREE: not in this image (read the parent; zeros in a base image).</summary>
    public const uint Free = 0xFFFFFFFF;
    /// <summary>VDI_IMAGE_BLOCK_ZERO: reads as zeros, nothing allocated.</summary>
    public const uint Zero = 0xFFFFFFFE;

    public const int PageBytes = 4096;
    private const int EntriesPerPage = PageBytes / 4;
    private const int MaxCachedPages = 256; // 1 MiB of map: 256 K blocks = 256 GiB of disk at 1 MiB blocks

    private readonly IImageFile _file;
    private readonly long _offBlocks;
    private readonly uint _count;
    private readonly Dictionary<uint, uint[]> _pages = new();
    private readonly Queue<uint> _order = new();
    private readonly object _lock = new();

    public VdiBlockMap(IImageFile file, long offBlocks, uint count)
    {
        _file = file;
        _offBlocks = offBlocks;
        _count = count;
    }

    public uint Count => _count;

    /// <summary>File offset of entry <paramref name="index"/>.</summary>
    public long EntryOffset(uint index) => _offBlocks + 4L * index;

    public uint Get(uint index)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, _count);
        uint page = index / EntriesPerPage;
        lock (_lock)
        {
            if (!_pages.TryGetValue(page, out var entries))
            {
                entries = Load(page);
                if (_pages.Count >= MaxCachedPages) _pages.Remove(_order.Dequeue());
                _pages[page] = entries;
                _order.Enqueue(page);
            }
            return entries[index % EntriesPerPage];
        }
    }

    /// <summary>Writes one entry to the file (not flushed: the caller orders it against data and header writes).</summary>
    public void Set(uint index, uint value)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, _count);
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(b, value);
        _file.Write(b, EntryOffset(index));
        lock (_lock)
        {
            if (_pages.TryGetValue(index / EntriesPerPage, out var entries)) entries[index % EntriesPerPage] = value;
        }
    }

    private uint[] Load(uint page)
    {
        uint first = page * EntriesPerPage;
        int n = (int)Math.Min(EntriesPerPage, _count - first);
        Span<byte> bytes = stackalloc byte[PageBytes];
        _file.ReadExactly(bytes[..(n * 4)], EntryOffset(first), "blocks array");
        var entries = new uint[n];
        for (int i = 0; i < n; i++) entries[i] = BinaryPrimitives.ReadUInt32LittleEndian(bytes[(i * 4)..]);
        return entries;
    }

    /// <summary>Streams every entry in order with a bounded buffer (for check), bypassing the cache.</summary>
    public IEnumerable<(uint Index, uint Value)> Scan()
    {
        const int Chunk = 16384;
        var buffer = new byte[Chunk * 4];
        for (uint first = 0; first < _count; first += Chunk)
        {
            int n = (int)Math.Min(Chunk, _count - first);
            _file.ReadExactly(buffer.AsSpan(0, n * 4), EntryOffset(first), "blocks array");
            for (int i = 0; i < n; i++)
                yield return (first + (uint)i, BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(i * 4)));
        }
    }
}
