using System.Buffers.Binary;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Formats;

/// <summary>
/// A table of uint32 entries in an image file, one per block (the VHD BAT; the same shape as the VDI blocks array).
/// Read lazily in 4 KiB pages through a bounded cache, so an open costs O(1) and memory stays bounded whatever the entry
/// count says. <see cref="Set"/> writes straight to the file, unflushed: the driver orders it against the block's data.
/// </summary>
internal sealed class BlockTable
{
    private const int PageBytes = 4096;
    private const int EntriesPerPage = PageBytes / 4;
    private const int MaxCachedPages = 256; // 1 MiB of table

    private readonly IImageFile _file;
    private readonly long _offset;
    private readonly bool _bigEndian;
    private readonly string _structure;
    private readonly BoundedCache<uint, uint[]> _pages = new(MaxCachedPages);

    /// <param name="file">The image file.</param>
    /// <param name="offset">File offset of entry 0.</param>
    /// <param name="count">Number of entries.</param>
    /// <param name="bigEndian">Byte order of the entries.</param>
    /// <param name="structure">The table's name in errors ("BAT").</param>
    public BlockTable(IImageFile file, long offset, uint count, bool bigEndian, string structure)
    {
        _file = file;
        _offset = offset;
        Count = count;
        _bigEndian = bigEndian;
        _structure = structure;
    }

    public uint Count { get; }

    /// <summary>File offset of entry <paramref name="index"/>.</summary>
    public long EntryOffset(uint index) => _offset + 4L * index;

    public uint Get(uint index)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, Count);
        return _pages.GetOrLoad(index / EntriesPerPage, Load)[index % EntriesPerPage];
    }

    /// <summary>Writes one entry to the file (not flushed).</summary>
    public void Set(uint index, uint value)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, Count);
        Span<byte> b = stackalloc byte[4];
        Encode(b, value);
        _file.Write(b, EntryOffset(index));
        _pages.Update(index / EntriesPerPage, entries => entries[index % EntriesPerPage] = value);
    }

    private uint[] Load(uint page)
    {
        uint first = page * EntriesPerPage;
        int n = (int)Math.Min(EntriesPerPage, Count - first);
        Span<byte> bytes = stackalloc byte[PageBytes];
        _file.ReadExactly(bytes[..(n * 4)], EntryOffset(first), _structure);
        var entries = new uint[n];
        for (int i = 0; i < n; i++) entries[i] = Decode(bytes[(i * 4)..]);
        return entries;
    }

    /// <summary>Streams every entry in order with a bounded buffer (check, recovery), bypassing the cache.</summary>
    public IEnumerable<(uint Index, uint Value)> Scan()
    {
        const int Chunk = 16384;
        var buffer = new byte[Chunk * 4];
        for (uint first = 0; first < Count; first += Chunk)
        {
            int n = (int)Math.Min(Chunk, Count - first);
            _file.ReadExactly(buffer.AsSpan(0, n * 4), EntryOffset(first), _structure);
            for (int i = 0; i < n; i++) yield return (first + (uint)i, Decode(buffer.AsSpan(i * 4)));
        }
    }

    private uint Decode(ReadOnlySpan<byte> b) => _bigEndian ? BinaryPrimitives.ReadUInt32BigEndian(b) : BinaryPrimitives.ReadUInt32LittleEndian(b);

    private void Encode(Span<byte> b, uint v)
    {
        if (_bigEndian) BinaryPrimitives.WriteUInt32BigEndian(b, v);
        else BinaryPrimitives.WriteUInt32LittleEndian(b, v);
    }
}
