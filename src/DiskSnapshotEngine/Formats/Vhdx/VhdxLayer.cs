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
/// through the VHDX log (<see cref="VhdxSession"/>). The write path is in VhdxLayer.Writes.cs, session commits and
/// metadata changes (parent, seal) in VhdxLayer.Metadata.cs, the in-place lifecycle steps in VhdxLayer.Identity.cs,
/// VhdxLayer.Resize.cs, VhdxLayer.Detach.cs and VhdxLayer.Repair.cs.
/// </summary>
internal sealed partial class VhdxLayer : IDiskLayer, ISealableLayer, IPlaceableLayer, IRewriteLoss
{
    private const int CommitThreshold = 64; // pending metadata sectors before an early log commit
    // Tests lower the resize's threshold (in their own async flow) to reach early commits on small images.
    internal static readonly AsyncLocal<int?> ResizeCommitThreshold = new();
    private static int CommitThresholdNow => ResizeCommitThreshold.Value ?? CommitThreshold;

    private readonly object _sync = new();
    private readonly IImageFile _file;          // the real file (writes go here)
    private readonly VhdxSectorCache _sectors;
    private readonly VhdxFileIdentifier _fileId;
    private readonly VhdxRegionTable _regions;
    private readonly VhdxMetadataRegion _metadata;
    private VhdxFileParameters _parameters;  // HasParent clears on detach
    private readonly VhdxBat _bat;
    private readonly VhdxSectorBitmap _bitmap;
    private readonly VhdxSession _session;
    private readonly long _virtualSize;
    private Guid _virtualDiskId;
    private readonly int _logicalSectorSize, _physicalSectorSize;
    private readonly bool _replayedInMemory;
    private VhdxParentLocator? _locator;
    private ParentLink? _parentLink;
    private SealReasons _seal;
    private SoleChild _soleChild;
    private bool _payloadUnflushed, _disposed, _tableVerified;
    private long _allocationEnd;

    internal VhdxLayer(IImageFile file, IImageFile view, bool writable, VhdxFileIdentifier fileId, VhdxHeader header, int headerSlot,
        VhdxRegionTable regions, VhdxRegionTableEntry bat, VhdxRegionTableEntry metadata, VhdxMetadataTable table,
        VhdxFileParameters parameters, long virtualSize, Guid virtualDiskId, int logical, int physical, VhdxParentLocator? locator,
        (SealReasons Seal, SoleChild Sole) seal)
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
        (_seal, _soleChild) = seal;
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
    public SealReasons Seal => _seal;
    public SoleChild SoleChild => _soleChild;
    public Guid CloneId => _virtualDiskId;

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

    // ---------------------------------------------------------------- check, details

    public CheckReport Check() => VhdxCheck.Run(this);

    internal VhdxBatEntry RawBatEntry(long index) { lock (_sync) return _bat.Read(index); }
    internal byte[] RawSector(long fileOffset, string structure) { lock (_sync) return (byte[])_sectors.Get(fileOffset, structure).Clone(); }
    internal VhdxRegionTableEntry LogRegion => new(Guid.Empty, (long)Header.LogOffset, Header.LogLength, true);
    internal VhdxRegionTableEntry BatRegion => _bat.Region;
    internal VhdxRegionTableEntry MetadataRegion => _metadata.Region;
    /// <summary>Every region-table entry (MS-VHDX 2.2.3.2), those dse does not know included: all are in use.</summary>
    internal IReadOnlyList<VhdxRegionTableEntry> Regions => _regions.Entries;

    /// <summary>What a rewrite into a new file (compact) would drop: the regions other than the BAT and metadata (2.2.3.2: an implementation keeps them), or null.</summary>
    public string? RewriteWouldLose =>
        _regions.Entries.Where(r => r.Guid != VhdxConstants.BatRegion && r.Guid != VhdxConstants.MetadataRegion).Select(r => $"the region {{{r.Guid}}} at file offset {r.FileOffset}").FirstOrDefault();
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
                KeyValuePair.Create("log offset", h.LogOffset.ToString()),
                KeyValuePair.Create("log length", h.LogLength.ToString()),
                KeyValuePair.Create("leave block allocated", _parameters.LeaveBlockAllocated.ToString().ToLowerInvariant()),
                KeyValuePair.Create("has parent", _parameters.HasParent.ToString().ToLowerInvariant()),
                KeyValuePair.Create("creator", _fileId.Creator),
                KeyValuePair.Create("chunk ratio", _bat.ChunkRatio.ToString()),
            };
            // One fact per key for each region table entry (MS-VHDX 2.2.3.2: Guid, FileOffset, Length, Required), with the
            // region's name from 2.3 where dse knows it.
            for (int i = 0; i < _regions.Entries.Count; i++)
            {
                var r = _regions.Entries[i];
                d.Add(KeyValuePair.Create($"region {i} guid", r.Guid.ToString("B")));
                d.Add(KeyValuePair.Create($"region {i} name", r.Guid == VhdxConstants.BatRegion ? "BAT" : r.Guid == VhdxConstants.MetadataRegion ? "Metadata" : "unknown"));
                d.Add(KeyValuePair.Create($"region {i} file offset", r.FileOffset.ToString(System.Globalization.CultureInfo.InvariantCulture)));
                d.Add(KeyValuePair.Create($"region {i} length", r.Length.ToString(System.Globalization.CultureInfo.InvariantCulture)));
                d.Add(KeyValuePair.Create($"region {i} required", r.Required ? "true" : "false"));
            }
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
