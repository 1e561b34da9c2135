using System.Buffers.Binary;
using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;
using static DiskSnapshotEngine.Formats.Vhdx.VhdxConstants;

namespace DiskSnapshotEngine.Formats.Vhdx;

/// <summary>
/// One VHDX file (MS-VHDX) as a layer. Opening reads the headers, region table and metadata only; the BAT and the
/// sector bitmap are read in 4 KiB sectors on demand through <see cref="VhdxSectorCache"/>, so the cost of an open does
/// not depend on the virtual size. Every BAT, sector-bitmap and metadata-region update goes through the VHDX log.
/// </summary>
public sealed partial class VhdxLayer : IDiskLayer, IIdentityWritable, IParentDetachable
{
    private const int CommitThreshold = 64; // pending metadata sectors before an early log commit

    private readonly object _sync = new();
    private readonly IImageFile _file;          // the real file (writes go here)
    private readonly VhdxSectorCache _sectors;
    private readonly VhdxFileIdentifier _fileId;
    private readonly VhdxRegionTable _regions;
    private readonly VhdxRegionTableEntry _batRegion, _metadataRegion;
    private readonly VhdxMetadataTable _metadataTable;
    private VhdxFileParameters _parameters;
    private readonly long _virtualSize;
    private Guid _virtualDiskId;
    private readonly int _logicalSectorSize, _physicalSectorSize;
    private readonly long _chunkRatio, _payloadBlocks;
    private long _batEntryCount;
    private VhdxParentLocator? _locator;
    private ParentLink? _parentLink;
    private VhdxHeader _header;
    private int _currentHeaderSlot; // 0: header 1 at 64 KiB, 1: header 2 at 128 KiB
    private readonly bool _replayedInMemory;

    // Write session state.
    private bool _sessionStarted, _versionChanged, _payloadUnflushed, _disposed;
    private VhdxLogWriter? _log;
    private long _allocationEnd;

    internal VhdxLayer(IImageFile file, IImageFile view, bool writable, VhdxFileIdentifier fileId, VhdxHeader header, int headerSlot,
        VhdxRegionTable regions, VhdxRegionTableEntry bat, VhdxRegionTableEntry metadata, VhdxMetadataTable table,
        VhdxFileParameters parameters, long virtualSize, Guid virtualDiskId, int logical, int physical, VhdxParentLocator? locator)
    {
        _file = file;
        File = view;
        _replayedInMemory = !ReferenceEquals(file, view);
        IsWritable = writable;
        _fileId = fileId;
        _header = header;
        _currentHeaderSlot = headerSlot;
        _regions = regions;
        _batRegion = bat;
        _metadataRegion = metadata;
        _metadataTable = table;
        _parameters = parameters;
        _virtualSize = virtualSize;
        _virtualDiskId = virtualDiskId;
        _logicalSectorSize = logical;
        _physicalSectorSize = physical;
        _locator = locator;
        _chunkRatio = ChunkRatioOf(logical, (int)parameters.BlockSize);
        _payloadBlocks = CeilDiv(virtualSize, parameters.BlockSize);
        _batEntryCount = BatEntriesFor(_payloadBlocks, _chunkRatio, parameters.HasParent);
        _sectors = new VhdxSectorCache(view);
        if (locator is not null) _parentLink = BuildParentLink(locator);
    }

    internal static long ChunkRatioOf(int logicalSectorSize, int blockSize) => SectorsPerBitmapBlock * logicalSectorSize / blockSize;

    internal static long CeilDiv(long a, long b) => (a + b - 1) / b;

    /// <summary>BAT entries a disk needs (MS-VHDX 2.5): differencing files carry every sector bitmap entry, others up to the last payload entry.</summary>
    internal static long BatEntriesFor(long payloadBlocks, long chunkRatio, bool hasParent) =>
        hasParent ? CeilDiv(payloadBlocks, chunkRatio) * (chunkRatio + 1) : payloadBlocks + (payloadBlocks - 1) / chunkRatio;

    public string Path => _file.Path;
    public ImageFormat Format => ImageFormat.Vhdx;
    public ImageType Type => _parameters.HasParent ? ImageType.Differencing : _parameters.LeaveBlockAllocated ? ImageType.Fixed : ImageType.Dynamic;
    public long VirtualSize => _virtualSize;
    public int LogicalSectorSize => _logicalSectorSize;
    public int PhysicalSectorSize => _physicalSectorSize;
    public int BlockSize => (int)_parameters.BlockSize;
    public bool IsWritable { get; }
    public ImageIdentity Identity => new(_virtualDiskId, _header.DataWriteGuid);
    public ParentLink? ParentLink => _parentLink;
    public bool PreserveVersionOnWrite { get; set; }
    public IImageFile File { get; }

    private bool IsDifferencing => _parameters.HasParent;
    private long LogOffset => (long)_header.LogOffset;

    // ---------------------------------------------------------------- BAT access

    private long PayloadBatIndex(long block) => block + block / _chunkRatio;

    private long BitmapBatIndex(long chunk) => chunk * (_chunkRatio + 1) + _chunkRatio;

    private VhdxBatEntry ReadBatEntry(long index)
    {
        long pos = _batRegion.FileOffset + index * 8;
        var sector = _sectors.Get(SpanHelpers.AlignDown(pos, 4096), "BAT");
        return new VhdxBatEntry(BinaryPrimitives.ReadUInt64LittleEndian(sector.AsSpan((int)(pos % 4096))));
    }

    private void WriteBatEntry(long index, VhdxBatEntry entry)
    {
        long pos = _batRegion.FileOffset + index * 8;
        var sector = _sectors.GetForWrite(SpanHelpers.AlignDown(pos, 4096), "BAT");
        BinaryPrimitives.WriteUInt64LittleEndian(sector.AsSpan((int)(pos % 4096)), entry.Raw);
    }

    /// <summary>Reads and validates the payload entry of a block: the state is known, an allocated block lies inside the file and outside the metadata structures.</summary>
    private VhdxBatEntry PayloadEntry(long block)
    {
        long index = PayloadBatIndex(block);
        var e = ReadBatEntry(index);
        long at = _batRegion.FileOffset + index * 8;
        switch (e.State)
        {
            case VhdxBatEntry.NotPresent or VhdxBatEntry.Undefined or VhdxBatEntry.Zero or VhdxBatEntry.Unmapped:
                return e;
            case VhdxBatEntry.FullyPresent:
                break;
            case VhdxBatEntry.PartiallyPresent:
                if (!IsDifferencing)
                    ThrowHelper.Corrupt(Path, "BAT entry", at, $"payload block {block} is PAYLOAD_BLOCK_PARTIALLY_PRESENT in a file without a parent");
                break;
            default:
                ThrowHelper.Corrupt(Path, "BAT entry", at, $"payload block {block} has {VhdxBatEntry.StateName(e.State)}");
                break;
        }
        CheckAllocation(e.FileOffset, BlockExtent(block), at, $"payload block {block}");
        return e;
    }

    private long BlockExtent(long block) => Math.Min(_parameters.BlockSize, _virtualSize - block * _parameters.BlockSize);

    private void CheckAllocation(long fileOffset, long length, long entryOffset, string what)
    {
        if (fileOffset < HeaderAreaSize)
            ThrowHelper.Corrupt(Path, "BAT entry", entryOffset, $"{what} at file offset {fileOffset} lies inside the header area");
        if (fileOffset + length > File.Length)
            ThrowHelper.Corrupt(Path, "BAT entry", entryOffset, $"{what} at file offset {fileOffset} (+{length}) lies past the end of the file ({File.Length} bytes)");
        if (Overlaps(fileOffset, length, _batRegion.FileOffset, _batRegion.Length)
            || Overlaps(fileOffset, length, _metadataRegion.FileOffset, _metadataRegion.Length)
            || Overlaps(fileOffset, length, LogOffset, _header.LogLength))
            ThrowHelper.Corrupt(Path, "BAT entry", entryOffset, $"{what} at file offset {fileOffset} overlaps the log, BAT or metadata region");
    }

    private static bool Overlaps(long a, long aLen, long b, long bLen) => a < b + bLen && b < a + aLen;

    private VhdxBatEntry BitmapEntry(long chunk)
    {
        long index = BitmapBatIndex(chunk);
        var e = ReadBatEntry(index);
        long at = _batRegion.FileOffset + index * 8;
        if (e.State == VhdxBatEntry.SbPresent) CheckAllocation(e.FileOffset, SectorBitmapBlockSize, at, $"sector bitmap block {chunk}");
        else if (e.State != VhdxBatEntry.SbNotPresent)
            ThrowHelper.Corrupt(Path, "BAT entry", at, $"sector bitmap block {chunk} has invalid state {e.State}");
        return e;
    }

    // ---------------------------------------------------------------- status

    public LayerExtent GetStatus(long offset, long length)
    {
        if (offset < 0 || length <= 0 || offset > _virtualSize - length) ThrowHelper.OutOfBounds(Path, offset, length, _virtualSize);
        lock (_sync)
        {
            long end = offset + length;
            var acc = PieceStatus(offset, end);
            // Coalesce following pieces of the same kind (data only when contiguous in the file): export speed depends on long runs.
            while (acc.End < end)
            {
                var next = PieceStatus(acc.End, end);
                if (next.Kind != acc.Kind || (acc.Kind == ExtentKind.Data && acc.FileOffset + acc.Length != next.FileOffset)) break;
                acc = acc with { Length = acc.Length + next.Length };
            }
            return acc;
        }
    }

    private LayerExtent PieceStatus(long pos, long end)
    {
        long bs = _parameters.BlockSize;
        long block = pos / bs;
        long blockStart = block * bs;
        long pieceEnd = Math.Min(end, Math.Min(blockStart + bs, _virtualSize));
        var e = PayloadEntry(block);
        switch (e.State)
        {
            case VhdxBatEntry.FullyPresent:
                return new LayerExtent(pos, pieceEnd - pos, ExtentKind.Data, e.FileOffset + (pos - blockStart));
            case VhdxBatEntry.PartiallyPresent:
            {
                var (present, runEnd) = SectorRun(pos, pieceEnd);
                return present
                    ? new LayerExtent(pos, runEnd - pos, ExtentKind.Data, e.FileOffset + (pos - blockStart))
                    : new LayerExtent(pos, runEnd - pos, ExtentKind.NotPresent);
            }
            case VhdxBatEntry.NotPresent:
                // MS-VHDX 2.5.1.1: not in this file; a differencing file reads it from the parent, a base file as zeros
                // (the chain zero-fills below its base, so "not present" reads the same either way).
                return new LayerExtent(pos, pieceEnd - pos, ExtentKind.NotPresent);
            default:
                // ZERO, UNDEFINED and UNMAPPED never inherit the parent's content: they read as zeros (UNDEFINED and
                // UNMAPPED content is not defined by the spec, zeros is the defined choice) in any file.
                return new LayerExtent(pos, pieceEnd - pos, ExtentKind.Zero);
        }
    }

    /// <summary>
    /// The run of sectors from <paramref name="pos"/> that share one sector-bitmap bit value, up to <paramref name="limit"/>
    /// (inside one block, hence one chunk). MS-VHDX 2.5: bit i%8 of byte i/8 belongs to sector i; 1 = present in this file.
    /// </summary>
    private (bool Present, long RunEnd) SectorRun(long pos, long limit)
    {
        long ls = _logicalSectorSize;
        long sector = pos / ls;
        long lastSector = (limit - 1) / ls;
        long chunk = sector / SectorsPerBitmapBlock;
        var sb = BitmapEntry(chunk);
        if (sb.State != VhdxBatEntry.SbPresent)
            ThrowHelper.Corrupt(Path, "BAT entry", _batRegion.FileOffset + BitmapBatIndex(chunk) * 8,
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

    private bool SectorPresent(long sector)
    {
        var sb = BitmapEntry(sector / SectorsPerBitmapBlock);
        if (sb.State != VhdxBatEntry.SbPresent) return false;
        long inChunk = sector % SectorsPerBitmapBlock;
        var page = _sectors.Get(sb.FileOffset + SpanHelpers.AlignDown(inChunk / 8, 4096), "sector bitmap");
        return (page[(inChunk / 8) % 4096] >> (int)(inChunk % 8) & 1) != 0;
    }

    // ---------------------------------------------------------------- writes

    public (long Offset, long Length) GetWriteSpan(long offset, long length)
    {
        if (offset < 0 || length < 0 || offset > _virtualSize - length) ThrowHelper.OutOfBounds(Path, offset, length, _virtualSize);
        if (!IsDifferencing || length == 0) return (offset, length);
        lock (_sync)
        {
            long ls = _logicalSectorSize;
            long start = offset, end = offset + length;
            // Only the sector bitmap's granularity matters: a sector that becomes present must be written whole,
            // unless this layer already holds it (or the block reads zeros/is fully present, so fresh space is right).
            if (start % ls != 0 && NeedsWholeSector(start)) start = SpanHelpers.AlignDown(start, ls);
            if (end % ls != 0 && NeedsWholeSector(end - 1)) end = Math.Min(_virtualSize, SpanHelpers.AlignUp(end, ls));
            return (start, end - start);
        }
    }

    private bool NeedsWholeSector(long pos)
    {
        var e = PayloadEntry(pos / _parameters.BlockSize);
        return e.State switch
        {
            VhdxBatEntry.NotPresent => true,
            VhdxBatEntry.PartiallyPresent => !SectorPresent(pos / _logicalSectorSize),
            _ => false,
        };
    }

    public void Write(long offset, ReadOnlySpan<byte> data)
    {
        if (!IsWritable) ThrowHelper.ReadOnly(Path, "write");
        if (offset < 0 || offset > _virtualSize - data.Length) ThrowHelper.OutOfBounds(Path, offset, data.Length, _virtualSize);
        lock (_sync)
        {
            long bs = _parameters.BlockSize;
            while (data.Length > 0)
            {
                long blockEnd = (offset / bs + 1) * bs;
                int n = (int)Math.Min(data.Length, blockEnd - offset);
                WriteInBlock(offset, data[..n]);
                offset += n;
                data = data[n..];
                // Bounded pending metadata: each log entry stays far below the smallest (1 MiB) log.
                if (_sectors.DirtyCount >= CommitThreshold) CommitPending();
            }
        }
    }

    private void WriteInBlock(long offset, ReadOnlySpan<byte> data)
    {
        long bs = _parameters.BlockSize;
        long block = offset / bs;
        long blockStart = block * bs;
        long inner = offset - blockStart;
        var e = PayloadEntry(block);
        bool wholeBlock = inner == 0 && data.Length == BlockExtent(block);
        switch (e.State)
        {
            case VhdxBatEntry.FullyPresent:
                BeginChange(content: true);
                _file.Write(data, e.FileOffset + inner);
                return;
            case VhdxBatEntry.PartiallyPresent:
                CheckSectorAligned(offset, data.Length);
                BeginChange(content: true);
                _file.Write(data, e.FileOffset + inner);
                SetSectorBits(offset, data.Length);
                return;
        }

        bool readsZero = e.State != VhdxBatEntry.NotPresent || !IsDifferencing;
        if (SpanHelpers.IsAllZero(data))
        {
            if (wholeBlock)
            {
                // A whole block of zeros is recorded as ZERO without allocating (and hides the parent in a differencing file).
                if (e.State == VhdxBatEntry.Zero) return;
                BeginChange(content: true);
                WriteBatEntry(PayloadBatIndex(block), VhdxBatEntry.Make(VhdxBatEntry.Zero, 0));
                return;
            }
            if (readsZero) return; // part of a block that already reads as zeros: nothing to record, nothing to allocate
        }

        BeginChange(content: true);
        long fileOffset = Allocate(bs);
        // The payload goes to fresh space beyond every mapped block; it becomes visible only when the BAT entry is
        // committed through the log after this data is flushed, so a crash leaves the old content and a leaked block.
        _file.Write(data, fileOffset + inner);
        _payloadUnflushed = true;
        if (readsZero || wholeBlock)
        {
            // Fresh space reads as zeros, which is what the rest of a ZERO/UNMAPPED/UNDEFINED block (or of a base image's block) shows.
            WriteBatEntry(PayloadBatIndex(block), VhdxBatEntry.Make(VhdxBatEntry.FullyPresent, fileOffset));
        }
        else
        {
            CheckSectorAligned(offset, data.Length);
            EnsureBitmapBlock(block * bs / _logicalSectorSize / SectorsPerBitmapBlock);
            ClearBlockBits(block);
            WriteBatEntry(PayloadBatIndex(block), VhdxBatEntry.Make(VhdxBatEntry.PartiallyPresent, fileOffset));
            SetSectorBits(offset, data.Length);
        }
    }

    private void CheckSectorAligned(long offset, long length)
    {
        long ls = _logicalSectorSize;
        long end = offset + length;
        if ((offset % ls != 0 && !SectorPresentOrFresh(offset)) || (end % ls != 0 && end != _virtualSize && !SectorPresentOrFresh(end - 1)))
            throw new DiskImageException(ErrorKind.InvalidArgument,
                $"write [{offset}, +{length}) covers part of a logical sector this differencing layer does not hold; use GetWriteSpan", Path);
    }

    private bool SectorPresentOrFresh(long pos)
    {
        var e = PayloadEntry(pos / _parameters.BlockSize);
        return e.State != VhdxBatEntry.PartiallyPresent && e.State != VhdxBatEntry.NotPresent || e.State == VhdxBatEntry.PartiallyPresent && SectorPresent(pos / _logicalSectorSize);
    }

    private void EnsureBitmapBlock(long chunk)
    {
        var sb = BitmapEntry(chunk);
        if (sb.State == VhdxBatEntry.SbPresent) return;
        // A new sector bitmap block is fresh zeroed space; only the sectors we set bits in are written, through the log.
        long off = Allocate(SectorBitmapBlockSize);
        WriteBatEntry(BitmapBatIndex(chunk), VhdxBatEntry.Make(VhdxBatEntry.SbPresent, off));
    }

    /// <summary>
    /// A block becoming PARTIALLY_PRESENT must start with no sector present: bits another writer left behind for a
    /// NOT_PRESENT block would otherwise expose the fresh (zero) payload instead of the parent's data.
    /// </summary>
    private void ClearBlockBits(long block)
    {
        long ls = _logicalSectorSize;
        long first = block * _parameters.BlockSize / ls;
        long count = BlockExtent(block) / ls;
        var sb = BitmapEntry(first / SectorsPerBitmapBlock);
        // Blocks hold a multiple of 8 sectors and start on a byte of the bitmap (block size >= 1 MiB).
        long byteStart = first % SectorsPerBitmapBlock / 8, byteEnd = byteStart + SpanHelpers.AlignUp(count, 8) / 8;
        for (long page = SpanHelpers.AlignDown(byteStart, 4096); page < byteEnd; page += 4096)
        {
            int s = (int)(Math.Max(byteStart, page) - page), e = (int)(Math.Min(byteEnd, page + 4096) - page);
            if (_sectors.Get(sb.FileOffset + page, "sector bitmap").AsSpan(s, e - s).IndexOfAnyExcept((byte)0) < 0) continue;
            _sectors.GetForWrite(sb.FileOffset + page, "sector bitmap").AsSpan(s, e - s).Clear();
        }
    }

    private void SetSectorBits(long offset, long length)
    {
        long ls = _logicalSectorSize;
        long first = offset / ls, last = (offset + length - 1) / ls;
        long s = first;
        while (s <= last)
        {
            long chunk = s / SectorsPerBitmapBlock;
            EnsureBitmapBlock(chunk);
            var sb = BitmapEntry(chunk);
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

    private long Allocate(long size)
    {
        // MS-VHDX 2.5: payload and sector bitmap blocks are 1 MiB aligned. New space always comes from past the end of
        // the file, never from a hole a crash may have left, so a block is never referenced twice.
        long off = SpanHelpers.AlignUp(Math.Max(_file.Length, _allocationEnd), MiB);
        _allocationEnd = off + size;
        _file.SetLength(_allocationEnd);
        return off;
    }

    public void WriteZeroes(long offset, long length)
    {
        if (!IsWritable) ThrowHelper.ReadOnly(Path, "write");
        if (offset < 0 || length < 0 || offset > _virtualSize - length) ThrowHelper.OutOfBounds(Path, offset, length, _virtualSize);
        long bs = _parameters.BlockSize;
        if (offset % bs != 0 || (length % bs != 0 && offset + length != _virtualSize))
            ThrowHelper.InvalidArgument($"WriteZeroes needs a block-aligned range (block size {bs}), got [{offset}, +{length})", Path);
        lock (_sync)
        {
            for (long block = offset / bs; block * bs < offset + length; block++)
            {
                var e = PayloadEntry(block);
                if (e.State == VhdxBatEntry.Zero) continue;
                if (!IsDifferencing && e.State is VhdxBatEntry.NotPresent or VhdxBatEntry.Undefined or VhdxBatEntry.Unmapped) continue;
                BeginChange(content: true);
                if (!IsDifferencing && _parameters.LeaveBlockAllocated && e.State == VhdxBatEntry.FullyPresent)
                {
                    // MS-VHDX 2.6.2.1 LeaveBlockAllocated: a fully provisioned file keeps its blocks; zero them in place.
                    ZeroFill(e.FileOffset, BlockExtent(block));
                    continue;
                }
                // The old payload, if any, is left unreferenced (a leak that check reports and compact reclaims).
                WriteBatEntry(PayloadBatIndex(block), VhdxBatEntry.Make(VhdxBatEntry.Zero, 0));
                if (_sectors.DirtyCount >= CommitThreshold) CommitPending();
            }
        }
    }

    private void ZeroFill(long fileOffset, long length)
    {
        using var zeros = AlignedBufferPool.Rent((int)Math.Min(length, MiB));
        zeros.Span.Clear();
        while (length > 0)
        {
            int n = (int)Math.Min(length, zeros.Capacity);
            _file.Write(zeros.Span[..n], fileOffset);
            fileOffset += n;
            length -= n;
        }
    }

    // ---------------------------------------------------------------- sessions, headers, log

    /// <summary>
    /// First change of a session: a header update with a new FileWriteGuid and LogGuid (MS-VHDX 2.2.2: FileWriteGuid
    /// changes before the first write), and a new DataWriteGuid before the first change of visible content.
    /// </summary>
    private void BeginChange(bool content)
    {
        bool newVersion = content && !_versionChanged && !PreserveVersionOnWrite;
        if (_sessionStarted && !newVersion) return;
        var h = _header;
        if (!_sessionStarted) h = h with { FileWriteGuid = Guid.NewGuid(), LogGuid = Guid.NewGuid() };
        if (newVersion) h = h with { DataWriteGuid = Guid.NewGuid() };
        UpdateHeaders(h);
        if (!_sessionStarted)
        {
            // A fresh LogGuid makes every older entry in the log invalid, so the writer starts at the log's beginning.
            _log = new VhdxLogWriter(_file, LogOffset, _header.LogLength, _header.LogGuid, 1, 0);
            _sessionStarted = true;
        }
        if (newVersion) _versionChanged = true;
    }

    /// <summary>MS-VHDX 2.2.2.1: write the non-current header with the next sequence number, flush, then the other one.</summary>
    private void UpdateHeaders(VhdxHeader template)
    {
        Span<byte> buf = stackalloc byte[HeaderSize];
        ulong seq = _header.SequenceNumber;
        int other = 1 - _currentHeaderSlot;
        var first = template with { SequenceNumber = seq + 1 };
        first.Write(buf);
        _file.Write(buf, other == 0 ? Header1Offset : Header2Offset);
        _file.Flush();
        var second = template with { SequenceNumber = seq + 2 };
        second.Write(buf);
        _file.Write(buf, _currentHeaderSlot == 0 ? Header1Offset : Header2Offset);
        _file.Flush();
        _header = second;
    }

    /// <summary>After a replay on a read-write open, the log is applied: record that with LogGuid = empty.</summary>
    internal void ClearLogGuidAfterReplay() =>
        UpdateHeaders(_header with { FileWriteGuid = Guid.NewGuid(), LogGuid = Guid.Empty });

    private void CommitPending()
    {
        if (_sectors.DirtyCount == 0) return;
        // Payload first: the log entry that maps new blocks must never reach the disk before their data.
        _file.Flush();
        _payloadUnflushed = false;
        var writes = _sectors.DirtySectors().Select(kv => new VhdxLogWrite(kv.Key, kv.Value, 4096)).ToList();
        long length = _file.Length;
        _log!.Commit(writes, length, length);
        _sectors.MarkClean();
    }

    public void Flush()
    {
        if (!IsWritable) return;
        lock (_sync)
        {
            CommitPending();
            if (_payloadUnflushed || _sessionStarted) _file.Flush();
            _payloadUnflushed = false;
        }
    }

    // ---------------------------------------------------------------- parent

    public void SetParent(ParentDescriptor parent)
    {
        if (!IsWritable) ThrowHelper.ReadOnly(Path, "set the parent");
        if (!IsDifferencing)
            throw new DiskImageException(ErrorKind.Unsupported, "the image has no parent (HasParent is not set)", Path, "file parameters");
        if (parent.Format != ImageFormat.Vhdx)
            throw new DiskImageException(ErrorKind.Unsupported, $"a differencing VHDX's parent must be a VHDX (got {parent.Format})", Path, "parent locator");
        ChainRules.CheckCompatible(Path, _virtualSize, _logicalSectorSize, parent.Path, parent.VirtualSize, parent.LogicalSectorSize);
        var locator = BuildLocator(Path, parent);
        var bytes = locator.ToBytes();
        lock (_sync)
        {
            int index = _metadataTable.Entries.FindIndex(e => e.ItemId == ParentLocatorItem && !e.IsUser);
            var old = _metadataTable.Entries[index];
            uint offset = old.Offset;
            // Rewrite in place when it fits before the next item; otherwise after the last item.
            long limit = _metadataTable.Entries.Where(e => e.Length > 0 && e.Offset > old.Offset).Select(e => (long)e.Offset).DefaultIfEmpty(_metadataRegion.Length).Min();
            if (offset + bytes.Length > limit)
            {
                long after = _metadataTable.Entries.Select(e => (long)e.Offset + e.Length).Max();
                offset = (uint)SpanHelpers.AlignUp(after, 8);
                if (offset + bytes.Length > _metadataRegion.Length)
                    throw new DiskImageException(ErrorKind.Unsupported, $"the new parent locator ({bytes.Length} bytes) does not fit in the metadata region", Path, "parent locator");
            }
            BeginChange(content: false);
            var updated = old with { Offset = offset, Length = (uint)bytes.Length };
            _metadataTable.Entries[index] = updated;
            var table = new byte[MetadataTableSize];
            _metadataTable.Write(table);
            // The table entry's sector and the locator's sectors, as whole 4 KiB sectors through the log.
            int entrySector = (int)SpanHelpers.AlignDown(32 + 32 * index, 4096);
            PatchMetadata(entrySector, table.AsSpan(entrySector, 4096));
            if (entrySector != 0) PatchMetadata(0, table.AsSpan(0, 4096));
            PatchMetadata(offset, bytes);
            _locator = locator;
            _parentLink = BuildParentLink(locator);
            CommitPending();
        }
    }

    private void PatchMetadata(long regionOffset, ReadOnlySpan<byte> data)
    {
        long pos = _metadataRegion.FileOffset + regionOffset;
        while (data.Length > 0)
        {
            long sectorStart = SpanHelpers.AlignDown(pos, 4096);
            int inSector = (int)(pos - sectorStart);
            int n = Math.Min(data.Length, 4096 - inSector);
            var sector = _sectors.GetForWrite(sectorStart, "metadata region");
            data[..n].CopyTo(sector.AsSpan(inSector));
            data = data[n..];
            pos += n;
        }
    }

    internal static VhdxParentLocator BuildLocator(string childPath, ParentDescriptor parent)
    {
        var entries = new List<KeyValuePair<string, string>>
        {
            KeyValuePair.Create("parent_linkage", parent.Identity.Version.ToString("B")),
        };
        string childDir = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(childPath)) ?? "/";
        string rel = System.IO.Path.GetRelativePath(childDir, parent.Path);
        if (!System.IO.Path.IsPathRooted(rel))
        {
            // MS-VHDX 2.6.2.6.1 shows relative paths Windows-style, starting from the child's folder.
            rel = rel.Replace('/', '\\');
            if (!rel.StartsWith("..", StringComparison.Ordinal)) rel = ".\\" + rel;
            entries.Add(KeyValuePair.Create("relative_path", rel));
        }
        if (OperatingSystem.IsWindows())
        {
            entries.Add(KeyValuePair.Create("absolute_win32_path", parent.Path));
        }
        else if (System.IO.Path.GetFullPath(parent.Path) is var full && !full.Contains('\\'))
        {
            // MS-VHDX 2.6.2.6.3 paths use "\" as the separator; a POSIX absolute path written that way is a Win32 path
            // from the root of the current drive, and our reader maps it back (LocalPath). Readers such as libvhdi
            // (vhdimount) find the parent only through absolute_win32_path or volume_path, never relative_path.
            // A name that holds a "\" itself cannot be written this way without changing its meaning, so it is left out.
            entries.Add(KeyValuePair.Create("absolute_win32_path", full.Replace('/', '\\')));
        }
        return new VhdxParentLocator(VhdxParentLocatorType, entries);
    }

    private ParentLink BuildParentLink(VhdxParentLocator locator)
    {
        string childDir = System.IO.Path.GetDirectoryName(Path) ?? "/";
        var candidates = new List<string>();
        // MS-VHDX 2.6.2.6.1: try relative_path, then volume_path, then absolute_win32_path.
        if (locator["relative_path"] is { Length: > 0 } rel)
        {
            string local = LocalPath("relative_path", rel);
            candidates.Add(System.IO.Path.GetFullPath(System.IO.Path.Combine(childDir, local)));
        }
        foreach (var key in new[] { "volume_path", "absolute_win32_path" })
        {
            if (locator[key] is not { Length: > 0 } p) continue;
            string local = LocalPath(key, p);
            // A Windows drive or volume path names nothing on another OS; only a path rooted here is a candidate.
            if (System.IO.Path.IsPathRooted(local) && (OperatingSystem.IsWindows() || local.StartsWith('/')))
                candidates.Add(System.IO.Path.GetFullPath(local));
        }
        return new ParentLink(candidates, null, ParseLinkage(locator, "parent_linkage")!.Value, ParseLinkage(locator, "parent_linkage2"), "parent_linkage");
    }

    // A locator path is text from the file: one the OS cannot name (a NUL) is corruption, not a missing parent.
    private string LocalPath(string key, string value)
    {
        if (value.AsSpan().IndexOfAny(System.IO.Path.GetInvalidPathChars()) >= 0)
            ThrowHelper.Corrupt(Path, "parent locator", null, $"{key} contains a character no path can hold");
        return OperatingSystem.IsWindows() ? value : value.Replace('\\', '/');
    }

    private Guid? ParseLinkage(VhdxParentLocator locator, string key)
    {
        var v = locator[key];
        if (v is null)
        {
            if (key == "parent_linkage") ThrowHelper.Corrupt(Path, "parent locator", null, "the parent_linkage entry is missing");
            return null;
        }
        if (!Guid.TryParse(v, out var g)) ThrowHelper.Corrupt(Path, "parent locator", null, $"{key} \"{v}\" is not a GUID");
        return g;
    }

    // ---------------------------------------------------------------- check, details

    public CheckReport Check() => VhdxCheck.Run(this);

    internal VhdxBatEntry RawBatEntry(long index) { lock (_sync) return ReadBatEntry(index); }
    internal byte[] RawSector(long fileOffset, string structure) { lock (_sync) return (byte[])_sectors.Get(fileOffset, structure).Clone(); }
    internal VhdxRegionTableEntry LogRegion => new(Guid.Empty, LogOffset, _header.LogLength, true);
    internal VhdxRegionTableEntry BatRegion => _batRegion;
    internal VhdxRegionTableEntry MetadataRegion => _metadataRegion;
    internal VhdxHeader Header => _header;
    internal long BatEntryCount => _batEntryCount;
    internal long ChunkRatio => _chunkRatio;
    internal long PayloadBlocks => _payloadBlocks;
    internal bool HasParent => IsDifferencing;
    internal bool InWriteSession => _sessionStarted;

    public IReadOnlyList<KeyValuePair<string, string>> Details
    {
        get
        {
            var d = new List<KeyValuePair<string, string>>
            {
                KeyValuePair.Create("type", Type.ToString().ToLowerInvariant()),
                KeyValuePair.Create("virtual size", _virtualSize.ToString()),
                KeyValuePair.Create("block size", _parameters.BlockSize.ToString()),
                KeyValuePair.Create("logical sector size", _logicalSectorSize.ToString()),
                KeyValuePair.Create("physical sector size", _physicalSectorSize.ToString()),
                KeyValuePair.Create("virtual disk id", _virtualDiskId.ToString("B")),
                KeyValuePair.Create("file write guid", _header.FileWriteGuid.ToString("B")),
                KeyValuePair.Create("data write guid", _header.DataWriteGuid.ToString("B")),
                KeyValuePair.Create("log guid", _header.LogGuid.ToString("B")),
                KeyValuePair.Create("header sequence number", _header.SequenceNumber.ToString()),
                KeyValuePair.Create("log", $"{_header.LogLength} bytes at {_header.LogOffset}"),
                KeyValuePair.Create("leave block allocated", _parameters.LeaveBlockAllocated.ToString().ToLowerInvariant()),
                KeyValuePair.Create("has parent", _parameters.HasParent.ToString().ToLowerInvariant()),
                KeyValuePair.Create("creator", _fileId.Creator),
                KeyValuePair.Create("chunk ratio", _chunkRatio.ToString()),
                KeyValuePair.Create("regions", string.Join(", ", _regions.Entries.Select(r => $"{{{r.Guid}}} {r.Length} bytes at {r.FileOffset}{(r.Required ? " required" : "")}"))),
            };
            if (_replayedInMemory) d.Add(KeyValuePair.Create("log replay", "replayed in memory (file not modified)"));
            if (_locator is not null)
                foreach (var (k, v) in _locator.Entries) d.Add(KeyValuePair.Create($"parent locator {k}", v));
            return d;
        }
    }

    // ---------------------------------------------------------------- close

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        try
        {
            if (IsWritable && _sessionStarted)
            {
                lock (_sync)
                {
                    CommitPending();
                    _file.Flush();
                    // Clean close: every log entry is applied, so LogGuid goes back to empty.
                    UpdateHeaders(_header with { LogGuid = Guid.Empty });
                }
            }
        }
        finally
        {
            File.Dispose();
        }
    }
}
