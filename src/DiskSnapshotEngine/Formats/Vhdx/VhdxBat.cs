using System.Buffers.Binary;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;
using static DiskSnapshotEngine.Formats.Vhdx.VhdxConstants;

namespace DiskSnapshotEngine.Formats.Vhdx;

/// <summary>
/// The BAT of one VHDX file (MS-VHDX 2.5): payload entries and sector bitmap entries interleaved, one sector bitmap
/// entry after every <see cref="ChunkRatio"/> payload entries. Entries are read and written as 4 KiB sectors through
/// the layer's <see cref="VhdxSectorCache"/> (written ones reach the file only through the log); every entry a read
/// or write relies on is validated first.
/// <code>
/// | payload 0 | payload 1 | ... | payload ratio-1 | bitmap 0 | payload ratio | ... | bitmap 1 | ...
/// </code>
/// </summary>
internal sealed class VhdxBat
{
    private readonly string _path;
    private readonly IImageFile _view;
    private readonly VhdxSectorCache _sectors;
    private readonly VhdxRegionTableEntry _region, _metadataRegion;
    private readonly long _logOffset, _logLength;
    private readonly long _blockSize, _virtualSize;
    private readonly bool _hasParent;

    /// <param name="path">The file's path, for errors.</param>
    /// <param name="view">What the file holds (for a read-only open of a dirty log, the in-memory replay).</param>
    /// <param name="sectors">The layer's metadata sector cache.</param>
    /// <param name="region">The BAT region.</param>
    /// <param name="metadataRegion">The metadata region (no block may overlap it).</param>
    /// <param name="logOffset">LogOffset of the header (no block may overlap the log).</param>
    /// <param name="logLength">LogLength of the header.</param>
    /// <param name="blockSize">BlockSize of the file parameters.</param>
    /// <param name="virtualSize">VirtualDiskSize.</param>
    /// <param name="logicalSectorSize">LogicalSectorSize.</param>
    /// <param name="hasParent">HasParent of the file parameters.</param>
    public VhdxBat(string path, IImageFile view, VhdxSectorCache sectors, VhdxRegionTableEntry region, VhdxRegionTableEntry metadataRegion,
        long logOffset, long logLength, long blockSize, long virtualSize, int logicalSectorSize, bool hasParent)
    {
        _path = path;
        _view = view;
        _sectors = sectors;
        _region = region;
        _metadataRegion = metadataRegion;
        _logOffset = logOffset;
        _logLength = logLength;
        _blockSize = blockSize;
        _virtualSize = virtualSize;
        _hasParent = hasParent;
        ChunkRatio = ChunkRatioOf(logicalSectorSize, (int)blockSize);
        PayloadBlocks = CeilDiv(virtualSize, blockSize);
        EntryCount = EntriesFor(PayloadBlocks, ChunkRatio, hasParent);
    }

    /// <summary>Payload blocks one sector bitmap block describes (MS-VHDX 2.5: 2^23 sectors).</summary>
    public long ChunkRatio { get; }

    /// <summary>Payload blocks of the virtual disk.</summary>
    public long PayloadBlocks { get; }

    /// <summary>BAT entries the disk needs.</summary>
    public long EntryCount { get; }

    /// <summary>The BAT region.</summary>
    public VhdxRegionTableEntry Region => _region;

    public static long ChunkRatioOf(int logicalSectorSize, int blockSize) => SectorsPerBitmapBlock * logicalSectorSize / blockSize;

    public static long CeilDiv(long a, long b) => (a + b - 1) / b;

    /// <summary>BAT entries a disk needs (MS-VHDX 2.5): differencing files carry every sector bitmap entry, others up to the last payload entry.</summary>
    public static long EntriesFor(long payloadBlocks, long chunkRatio, bool hasParent) =>
        hasParent ? CeilDiv(payloadBlocks, chunkRatio) * (chunkRatio + 1) : payloadBlocks + (payloadBlocks - 1) / chunkRatio;

    public long PayloadIndex(long block) => block + block / ChunkRatio;

    public long BitmapIndex(long chunk) => chunk * (ChunkRatio + 1) + ChunkRatio;

    /// <summary>File offset of entry <paramref name="index"/>.</summary>
    public long EntryOffset(long index) => _region.FileOffset + index * 8;

    /// <summary>Bytes of the virtual disk in <paramref name="block"/> (the last block may be short).</summary>
    public long BlockExtent(long block) => Math.Min(_blockSize, _virtualSize - block * _blockSize);

    /// <summary>An entry as stored, unvalidated.</summary>
    public VhdxBatEntry Read(long index)
    {
        long pos = EntryOffset(index);
        var sector = _sectors.Get(SpanHelpers.AlignDown(pos, 4096), "BAT");
        return new VhdxBatEntry(BinaryPrimitives.ReadUInt64LittleEndian(sector.AsSpan((int)(pos % 4096))));
    }

    /// <summary>Changes an entry in the pending sectors (it reaches the file with the next log commit).</summary>
    public void Write(long index, VhdxBatEntry entry)
    {
        long pos = EntryOffset(index);
        var sector = _sectors.GetForWrite(SpanHelpers.AlignDown(pos, 4096), "BAT");
        BinaryPrimitives.WriteUInt64LittleEndian(sector.AsSpan((int)(pos % 4096)), entry.Raw);
    }

    /// <summary>Reads and validates the payload entry of a block: the state is known, an allocated block lies inside the file and outside the metadata structures.</summary>
    public VhdxBatEntry Payload(long block)
    {
        long index = PayloadIndex(block);
        var e = Read(index);
        long at = EntryOffset(index);
        switch (e.State)
        {
            case VhdxBatEntry.NotPresent or VhdxBatEntry.Undefined or VhdxBatEntry.Zero or VhdxBatEntry.Unmapped:
                return e;
            case VhdxBatEntry.FullyPresent:
                break;
            case VhdxBatEntry.PartiallyPresent:
                if (!_hasParent)
                    ThrowHelper.Corrupt(_path, "BAT entry", at, $"payload block {block} is PAYLOAD_BLOCK_PARTIALLY_PRESENT in a file without a parent");
                break;
            default:
                ThrowHelper.Corrupt(_path, "BAT entry", at, $"payload block {block} has {VhdxBatEntry.StateName(e.State)}");
                break;
        }
        CheckAllocation(e.FileOffset, BlockExtent(block), at, $"payload block {block}");
        return e;
    }

    /// <summary>Reads and validates the sector bitmap entry of a chunk.</summary>
    public VhdxBatEntry Bitmap(long chunk)
    {
        long index = BitmapIndex(chunk);
        var e = Read(index);
        long at = EntryOffset(index);
        if (e.State == VhdxBatEntry.SbPresent) CheckAllocation(e.FileOffset, SectorBitmapBlockSize, at, $"sector bitmap block {chunk}");
        else if (e.State != VhdxBatEntry.SbNotPresent)
            ThrowHelper.Corrupt(_path, "BAT entry", at, $"sector bitmap block {chunk} has invalid state {e.State}");
        return e;
    }

    private void CheckAllocation(long fileOffset, long length, long entryOffset, string what)
    {
        if (fileOffset < HeaderAreaSize)
            ThrowHelper.Corrupt(_path, "BAT entry", entryOffset, $"{what} at file offset {fileOffset} lies inside the header area");
        if (fileOffset + length > _view.Length)
            ThrowHelper.Corrupt(_path, "BAT entry", entryOffset, $"{what} at file offset {fileOffset} (+{length}) lies past the end of the file ({_view.Length} bytes)");
        if (Overlaps(fileOffset, length, _region.FileOffset, _region.Length)
            || Overlaps(fileOffset, length, _metadataRegion.FileOffset, _metadataRegion.Length)
            || Overlaps(fileOffset, length, _logOffset, _logLength))
            ThrowHelper.Corrupt(_path, "BAT entry", entryOffset, $"{what} at file offset {fileOffset} overlaps the log, BAT or metadata region");
    }

    private static bool Overlaps(long a, long aLen, long b, long bLen) => a < b + bLen && b < a + aLen;
}
