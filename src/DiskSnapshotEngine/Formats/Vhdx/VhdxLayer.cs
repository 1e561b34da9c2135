using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;
using static DiskSnapshotEngine.Formats.Vhdx.VhdxConstants;

namespace DiskSnapshotEngine.Formats.Vhdx;

/// <summary>
/// One VHDX file (MS-VHDX) as a layer: what each range of the virtual disk is in this file, and the write path. Opening
/// reads the headers, region table and metadata only; the BAT (<see cref="VhdxBat"/>) and the sector bitmap
/// (<see cref="VhdxSectorBitmap"/>) are read in 4 KiB sectors on demand through <see cref="VhdxSectorCache"/>, so the
/// cost of an open does not depend on the virtual size. Every BAT, sector-bitmap and metadata-region update goes
/// through the VHDX log (<see cref="VhdxSession"/>).
/// </summary>
public sealed class VhdxLayer : IDiskLayer
{
    private const int CommitThreshold = 64; // pending metadata sectors before an early log commit

    private readonly object _sync = new();
    private readonly IImageFile _file;          // the real file (writes go here)
    private readonly VhdxSectorCache _sectors;
    private readonly VhdxFileIdentifier _fileId;
    private readonly VhdxRegionTable _regions;
    private readonly VhdxMetadataRegion _metadata;
    private readonly VhdxFileParameters _parameters;
    private readonly VhdxBat _bat;
    private readonly VhdxSectorBitmap _bitmap;
    private readonly VhdxSession _session;
    private readonly long _virtualSize;
    private readonly Guid _virtualDiskId;
    private readonly int _logicalSectorSize, _physicalSectorSize;
    private readonly bool _replayedInMemory;
    private VhdxParentLocator? _locator;
    private ParentLink? _parentLink;
    private bool _payloadUnflushed, _disposed;
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
        _regions = regions;
        _parameters = parameters;
        _virtualSize = virtualSize;
        _virtualDiskId = virtualDiskId;
        _logicalSectorSize = logical;
        _physicalSectorSize = physical;
        _locator = locator;
        _sectors = new VhdxSectorCache(view);
        _session = new VhdxSession(file, header, headerSlot);
        _metadata = new VhdxMetadataRegion(file.Path, metadata, table, _sectors);
        _bat = new VhdxBat(file.Path, view, _sectors, bat, metadata, (long)header.LogOffset, header.LogLength,
            parameters.BlockSize, virtualSize, logical, parameters.HasParent);
        _bitmap = new VhdxSectorBitmap(file.Path, _bat, _sectors, logical, parameters.BlockSize, Allocate);
        if (locator is not null) _parentLink = locator.ToParentLink(Path);
    }

    public string Path => _file.Path;
    public ImageFormat Format => ImageFormat.Vhdx;
    public ImageType Type => _parameters.HasParent ? ImageType.Differencing : _parameters.LeaveBlockAllocated ? ImageType.Fixed : ImageType.Dynamic;
    public long VirtualSize => _virtualSize;
    public int LogicalSectorSize => _logicalSectorSize;
    public int PhysicalSectorSize => _physicalSectorSize;
    public int BlockSize => (int)_parameters.BlockSize;
    public bool IsWritable { get; }
    public ImageIdentity Identity => new(_virtualDiskId, _session.Header.DataWriteGuid);
    public ParentLink? ParentLink => _parentLink;
    public bool PreserveVersionOnWrite { get; set; }
    public IImageFile File { get; }

    private bool IsDifferencing => _parameters.HasParent;

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
        var e = _bat.Payload(block);
        switch (e.State)
        {
            case VhdxBatEntry.FullyPresent:
                return new LayerExtent(pos, pieceEnd - pos, ExtentKind.Data, e.FileOffset + (pos - blockStart));
            case VhdxBatEntry.PartiallyPresent:
            {
                var (present, runEnd) = _bitmap.RunAt(pos, pieceEnd);
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
        var e = _bat.Payload(pos / _parameters.BlockSize);
        return e.State switch
        {
            VhdxBatEntry.NotPresent => true,
            VhdxBatEntry.PartiallyPresent => !_bitmap.IsPresent(pos / _logicalSectorSize),
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
        var e = _bat.Payload(block);
        bool wholeBlock = inner == 0 && data.Length == _bat.BlockExtent(block);
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
                _bitmap.Set(offset, data.Length);
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
                _bat.Write(_bat.PayloadIndex(block), VhdxBatEntry.Make(VhdxBatEntry.Zero, 0));
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
            _bat.Write(_bat.PayloadIndex(block), VhdxBatEntry.Make(VhdxBatEntry.FullyPresent, fileOffset));
        }
        else
        {
            CheckSectorAligned(offset, data.Length);
            _bitmap.Ensure(block * bs / _logicalSectorSize / SectorsPerBitmapBlock);
            _bitmap.ClearBlock(block);
            _bat.Write(_bat.PayloadIndex(block), VhdxBatEntry.Make(VhdxBatEntry.PartiallyPresent, fileOffset));
            _bitmap.Set(offset, data.Length);
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
        var e = _bat.Payload(pos / _parameters.BlockSize);
        return e.State != VhdxBatEntry.PartiallyPresent && e.State != VhdxBatEntry.NotPresent || e.State == VhdxBatEntry.PartiallyPresent && _bitmap.IsPresent(pos / _logicalSectorSize);
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
                var e = _bat.Payload(block);
                if (e.State == VhdxBatEntry.Zero) continue;
                if (!IsDifferencing && e.State is VhdxBatEntry.NotPresent or VhdxBatEntry.Undefined or VhdxBatEntry.Unmapped) continue;
                BeginChange(content: true);
                if (!IsDifferencing && _parameters.LeaveBlockAllocated && e.State == VhdxBatEntry.FullyPresent)
                {
                    // MS-VHDX 2.6.2.1 LeaveBlockAllocated: a fully provisioned file keeps its blocks; zero them in place.
                    _file.WriteZeros(e.FileOffset, _bat.BlockExtent(block));
                    continue;
                }
                // The old payload, if any, is left unreferenced (a leak that check reports and compact reclaims).
                _bat.Write(_bat.PayloadIndex(block), VhdxBatEntry.Make(VhdxBatEntry.Zero, 0));
                if (_sectors.DirtyCount >= CommitThreshold) CommitPending();
            }
        }
    }

    // ---------------------------------------------------------------- session

    private void BeginChange(bool content) => _session.BeginChange(content, PreserveVersionOnWrite);

    /// <summary>After a replay on a read-write open, the log is applied: record that with LogGuid = empty.</summary>
    internal void ClearLogGuidAfterReplay() => _session.ClearLogGuidAfterReplay();

    private void CommitPending()
    {
        if (_sectors.DirtyCount == 0) return;
        // Payload first: the log entry that maps new blocks must never reach the disk before their data.
        _file.Flush();
        _payloadUnflushed = false;
        _session.Commit(_sectors);
    }

    public void Flush()
    {
        if (!IsWritable) return;
        lock (_sync)
        {
            CommitPending();
            if (_payloadUnflushed || _session.Started) _file.Flush();
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
        var locator = VhdxParentLocator.For(Path, parent);
        var bytes = locator.ToBytes();
        lock (_sync)
        {
            int index = _metadata.Table.Entries.FindIndex(e => e.ItemId == ParentLocatorItem && !e.IsUser);
            // Placed before anything changes: a locator that does not fit leaves the file as it was.
            uint offset = _metadata.PlaceReplacement(index, bytes.Length, "parent locator");
            BeginChange(content: false);
            _metadata.Replace(index, offset, bytes);
            _locator = locator;
            _parentLink = locator.ToParentLink(Path);
            CommitPending();
        }
    }

    // ---------------------------------------------------------------- check, details

    public CheckReport Check() => VhdxCheck.Run(this);

    internal VhdxBatEntry RawBatEntry(long index) { lock (_sync) return _bat.Read(index); }
    internal byte[] RawSector(long fileOffset, string structure) { lock (_sync) return (byte[])_sectors.Get(fileOffset, structure).Clone(); }
    internal VhdxRegionTableEntry LogRegion => new(Guid.Empty, (long)Header.LogOffset, Header.LogLength, true);
    internal VhdxRegionTableEntry BatRegion => _bat.Region;
    internal VhdxRegionTableEntry MetadataRegion => _metadata.Region;
    internal VhdxHeader Header => _session.Header;
    internal long BatEntryCount => _bat.EntryCount;
    internal long ChunkRatio => _bat.ChunkRatio;
    internal long PayloadBlocks => _bat.PayloadBlocks;
    internal bool HasParent => IsDifferencing;
    internal bool InWriteSession => _session.Started;

    public IReadOnlyList<KeyValuePair<string, string>> Details
    {
        get
        {
            var h = Header;
            var d = new List<KeyValuePair<string, string>>
            {
                KeyValuePair.Create("type", Type.ToString().ToLowerInvariant()),
                KeyValuePair.Create("virtual size", _virtualSize.ToString()),
                KeyValuePair.Create("block size", _parameters.BlockSize.ToString()),
                KeyValuePair.Create("logical sector size", _logicalSectorSize.ToString()),
                KeyValuePair.Create("physical sector size", _physicalSectorSize.ToString()),
                KeyValuePair.Create("virtual disk id", _virtualDiskId.ToString("B")),
                KeyValuePair.Create("file write guid", h.FileWriteGuid.ToString("B")),
                KeyValuePair.Create("data write guid", h.DataWriteGuid.ToString("B")),
                KeyValuePair.Create("log guid", h.LogGuid.ToString("B")),
                KeyValuePair.Create("header sequence number", h.SequenceNumber.ToString()),
                KeyValuePair.Create("log", $"{h.LogLength} bytes at {h.LogOffset}"),
                KeyValuePair.Create("leave block allocated", _parameters.LeaveBlockAllocated.ToString().ToLowerInvariant()),
                KeyValuePair.Create("has parent", _parameters.HasParent.ToString().ToLowerInvariant()),
                KeyValuePair.Create("creator", _fileId.Creator),
                KeyValuePair.Create("chunk ratio", _bat.ChunkRatio.ToString()),
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
            if (IsWritable && _session.Started)
            {
                lock (_sync)
                {
                    CommitPending();
                    _file.Flush();
                    // Clean close: every log entry is applied, so LogGuid goes back to empty.
                    _session.Close();
                }
            }
        }
        finally
        {
            File.Dispose();
        }
    }
}
