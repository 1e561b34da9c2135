using System.Globalization;
using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Formats.Vdi;

/// <summary>
/// A VDI image (VirtualBox VDICore.h) as a layer: a header, a blocks array mapping each virtual block to a block index
/// in the data area (or FREE / ZERO), and the data blocks, appended as they are allocated.
/// <code>
/// [pre-header + header][..][blocks array at offBlocks][..][block 0 at offData][block 1]...   block i at offData + i * (cbBlockExtra + cbBlock) + cbBlockExtra
/// </code>
/// Crash ordering of an allocation: block data, flush, the header's cBlocksAllocated, flush, map entry, flush. A crash
/// leaves either the old content (the map entry never landed; the block is a leak) or the new one, and never a count
/// below what the map uses (which makes QEMU allocate over a used block; check calls it an error). Such a count from
/// another writer is still tolerated here: new blocks go after the end of the file, never over a used one.
/// </summary>
internal sealed partial class VdiLayer : IDiskLayer, ISealableLayer, IIdentityWritable, IParentDetachable, IResizable, IRepairable, IPlaceableLayer
{
    /// <summary>Largest cbBlock accepted: the chain's copy-on-write buffer is one block.</summary>
    public const int MaxBlockSize = 256 << 20;

    /// <summary>Largest cbBlockExtra accepted (VirtualBox and qemu write 0).</summary>
    public const int MaxBlockExtra = 1 << 20;

    private readonly VdiHeader _header;
    private readonly VdiBlockMap _map;
    private VdiImageType _type;
    private readonly uint _cbBlock;
    private readonly long _stride;
    private readonly long _size;
    private IReadOnlyList<string> _parentPaths;
    private long _nextBlock;
    private SealReasons _seal;
    private SoleChild _soleChild;
    private bool _versionChanged;
    private bool _tableVerified;
    private bool _disposed;

    internal VdiLayer(IImageFile file, VdiHeader header, bool writable)
    {
        File = file;
        _header = header;
        IsWritable = writable;
        _type = (VdiImageType)header.RawType;
        _cbBlock = header.CbBlock;
        _stride = (long)header.CbBlockExtra + header.CbBlock;
        _size = (long)header.CbDisk;
        _map = new VdiBlockMap(file, header.OffBlocks, header.CBlocks);
        // New blocks go after everything the file holds, even if the header count is behind (a crash between the map
        // entry and the header write): that way an interrupted allocation can never be overwritten by the next one.
        long inFile = file.Length > header.OffData ? (file.Length - header.OffData + _stride - 1) / _stride : 0;
        _nextBlock = Math.Max(header.CBlocksAllocated, inFile);
        (_seal, _soleChild) = VdiSealRecord.Read(file, header);
        _parentPaths = IsDiffLike ? VdiParentLocator.Read(file, header) : Array.Empty<string>();
    }

    internal bool IsDiffLike => _type is VdiImageType.Diff or VdiImageType.Undo;

    public string Path => File.Path;
    public ImageFormat Format => ImageFormat.Vdi;
    public ImageType Type => _type switch
    {
        VdiImageType.Fixed => ImageType.Fixed,
        VdiImageType.Normal => ImageType.Dynamic,
        _ => ImageType.Differencing,
    };
    public long VirtualSize => _size;
    public int LogicalSectorSize => 512;
    public int PhysicalSectorSize => 512;
    public int BlockSize => (int)_cbBlock;
    public bool IsWritable { get; }
    public IImageFile File { get; }
    public bool PreserveVersionOnWrite { get; set; }
    public SealReasons Seal => _seal;
    public SoleChild SoleChild => _soleChild;
    public Guid CloneId => _header.UuidCreate;

    public ImageIdentity Identity => new(_header.UuidCreate, _header.UuidModify);

    public ParentLink? ParentLink => IsDiffLike
        ? new ParentLink(_parentPaths, _header.UuidLinkage, _header.UuidParentModify, null, "uuidParentModify")
        : null;

    public IReadOnlyList<KeyValuePair<string, string>> Details
    {
        get
        {
            var h = _header;
            var list = new List<KeyValuePair<string, string>>();
            void Add(string k, string v) => list.Add(KeyValuePair.Create(k, v));
            Add("szFileInfo", h.FileInfo);
            Add("version", $"{h.Version >> 16}.{h.Version & 0xFFFF}");
            Add("cbHeader", h.CbHeader.ToString(CultureInfo.InvariantCulture));
            Add("u32Type", h.RawType.ToString(CultureInfo.InvariantCulture));
            Add("fFlags", $"0x{h.Flags:x8}");
            Add("szComment", h.Comment);
            Add("offBlocks", h.OffBlocks.ToString(CultureInfo.InvariantCulture));
            Add("offData", h.OffData.ToString(CultureInfo.InvariantCulture));
            Add("LegacyGeometry", h.LegacyGeometry.ToString());
            if (h.LchsGeometry is { } lchs) Add("LCHSGeometry", lchs.ToString());
            Add("cbDisk", h.CbDisk.ToString(CultureInfo.InvariantCulture));
            Add("cbBlock", h.CbBlock.ToString(CultureInfo.InvariantCulture));
            Add("cbBlockExtra", h.CbBlockExtra.ToString(CultureInfo.InvariantCulture));
            Add("cBlocks", h.CBlocks.ToString(CultureInfo.InvariantCulture));
            Add("cBlocksAllocated", h.CBlocksAllocated.ToString(CultureInfo.InvariantCulture));
            Add("uuidCreate", h.UuidCreate.ToString());
            Add("uuidModify", h.UuidModify.ToString());
            Add("uuidLinkage", h.UuidLinkage.ToString());
            Add("uuidParentModify", h.UuidParentModify.ToString());
            return list;
        }
    }

    // ---- status -------------------------------------------------------------------------------------------------

    public LayerExtent GetStatus(long offset, long length)
    {
        CheckRange(offset, length);
        long end = offset + length;
        uint block = (uint)(offset / _cbBlock);
        var (kind, fileOffset) = Classify(block);
        long runEnd = Math.Min(end, BlockStart(block + 1));
        long fileAt = kind == ExtentKind.Data ? fileOffset + (offset - BlockStart(block)) : -1;
        while (runEnd < end)
        {
            block++;
            var (k, f) = Classify(block);
            if (k != kind) break;
            if (k == ExtentKind.Data && f != fileAt + (runEnd - offset)) break;
            runEnd = Math.Min(end, BlockStart(block + 1));
        }
        return new LayerExtent(offset, runEnd - offset, kind, fileAt);
    }

    private long BlockStart(uint block) => Math.Min(_size, (long)block * _cbBlock);

    private long BlockLength(uint block) => Math.Min(_cbBlock, _size - (long)block * _cbBlock);

    /// <summary>The state of a virtual block; for data, the file offset of the block's first byte.</summary>
    private (ExtentKind Kind, long FileOffset) Classify(uint block)
    {
        uint entry = _map.Get(block);
        if (entry == VdiBlockMap.Free) return (IsDiffLike ? ExtentKind.NotPresent : ExtentKind.Zero, -1);
        if (entry == VdiBlockMap.Zero) return (ExtentKind.Zero, -1);
        return (ExtentKind.Data, DataOffset(block, entry));
    }

    private long DataOffset(uint block, uint entry)
    {
        if (entry >= _header.CBlocks)
            ThrowHelper.Corrupt(Path, "blocks array", _map.EntryOffset(block),
                $"entry {block} points at block {entry}, outside the {_header.CBlocks} blocks of the image");
        long off = _header.OffData + entry * _stride + _header.CbBlockExtra;
        if (off + _cbBlock > File.Length)
            ThrowHelper.Corrupt(Path, "blocks array", _map.EntryOffset(block),
                $"entry {block} points at block {entry} (file offset {off}), beyond the end of the file at {File.Length}");
        return off;
    }

    // A placed block (its data put in by another call, its map entry still pending) is held too: a write into it goes
    // in place, never through a whole-block copy that would read the unmapped block as zeros over the placed data.
    private bool IsAllocated(uint block) => _map.Get(block) < VdiBlockMap.Zero || _placed.ContainsKey(block);

    // ---- writes -------------------------------------------------------------------------------------------------

    public (long Offset, long Length) GetWriteSpan(long offset, long length)
    {
        CheckRange(offset, length);
        if (length == 0) return (offset, 0);
        long end = offset + length;
        uint first = (uint)(offset / _cbBlock), last = (uint)((end - 1) / _cbBlock);
        // A block this image does not hold yet is allocated whole, so the chain must give all of it (copy-on-write).
        long start = IsAllocated(first) ? offset : BlockStart(first);
        long stop = IsAllocated(last) ? end : BlockStart(last) + BlockLength(last);
        return (start, stop - start);
    }

    public void Write(long offset, ReadOnlySpan<byte> data)
    {
        EnsureWritable("write");
        CheckRange(offset, data.Length);
        FinishPlacements();
        foreach (var p in BlockPieces.Of(offset, data.Length, _cbBlock))
            WriteInBlock((uint)p.Block, p.InBlock, data.Slice(p.Start, p.Length));
    }

    private void WriteInBlock(uint block, long inBlock, ReadOnlySpan<byte> piece)
    {
        uint entry = _map.Get(block);
        if (entry < VdiBlockMap.Zero)
        {
            long off = DataOffset(block, entry);
            BeginContentChange();
            File.Write(piece, off + inBlock);
            return;
        }
        if (inBlock != 0 || piece.Length != BlockLength(block))
            throw new DiskImageException(ErrorKind.InvalidArgument,
                $"a write into unallocated block {block} must cover the whole block (ask GetWriteSpan first)", Path);
        if (SpanHelpers.IsAllZero(piece))
        {
            // A block of zeros is recorded as ZERO without allocating. In a base image a FREE block already reads as zeros.
            if (entry == VdiBlockMap.Zero || !IsDiffLike) return;
            BeginContentChange();
            _map.Set(block, VdiBlockMap.Zero);
            return;
        }
        Allocate(block, piece);
    }

    private void Allocate(uint block, ReadOnlySpan<byte> data)
    {
        // Past cBlocks only a block a crash left unreferenced (written, never mapped) can be taken: reuse it.
        uint index = _nextBlock < _header.CBlocks ? (uint)_nextBlock
            : UnreferencedIndex() ?? throw new DiskImageException(ErrorKind.Unsupported,
                $"no block index left below cBlocks {_header.CBlocks}", Path, "blocks array");
        long blockOffset = _header.OffData + index * _stride;
        BeginContentChange();
        if (_header.CbBlockExtra == 0 && data.Length == _cbBlock)
        {
            File.Write(data, blockOffset);
        }
        else
        {
            // Whole blocks on disk, even the short last one and the extra area, as VirtualBox and qemu write them.
            using var buffer = AlignedBufferPool.Rent((int)_stride);
            var span = buffer.Span[..(int)_stride];
            span.Clear();
            data.CopyTo(span[(int)_header.CbBlockExtra..]);
            File.Write(span, blockOffset);
        }
        // The data must be durable before anything counts or points at it, and the header must count the block before
        // a map entry uses it: a count below what the map uses makes QEMU (and VirtualBox) allocate their next block
        // on top of a used one. A kill between the two leaves a count one above the map's: a leak, never an overlap.
        File.Flush();
        _nextBlock = Math.Max(_nextBlock, index + 1L);
        _header.CBlocksAllocated = (uint)Math.Min(_nextBlock, _header.CBlocks);
        _header.WriteTo(File);
        File.Flush();
        _map.Set(block, index);
        File.Flush();
    }

    // The lowest block index in the file that no map entry references (O(cBlocks), only when the indices ran out).
    private uint? UnreferencedIndex()
    {
        long limit = Math.Min(_nextBlock, _header.CBlocks);
        var used = new bool[limit];
        for (uint b = 0; b < _header.CBlocks; b++)
            if (_map.Get(b) is var e && e < VdiBlockMap.Zero && e < limit) used[e] = true;
        int free = Array.IndexOf(used, false);
        return free < 0 ? null : (uint)free;
    }

    public void WriteZeroes(long offset, long length)
    {
        EnsureWritable("write zeroes");
        CheckRange(offset, length);
        FinishPlacements();
        long end = offset + length;
        if (offset % _cbBlock != 0 || (end % _cbBlock != 0 && end != _size))
            ThrowHelper.InvalidArgument($"WriteZeroes range [{offset}, {end}) is not block-aligned (cbBlock {_cbBlock})", Path);
        for (long at = offset; at < end; at += _cbBlock)
        {
            uint block = (uint)(at / _cbBlock);
            uint entry = _map.Get(block);
            if (entry < VdiBlockMap.Zero)
            {
                // An allocated block is zeroed in place: marking it ZERO would leak its space (and qemu-img check counts that).
                long off = DataOffset(block, entry);
                BeginContentChange();
                File.WriteZeros(off, BlockLength(block));
            }
            else if (entry == VdiBlockMap.Free && IsDiffLike)
            {
                BeginContentChange();
                _map.Set(block, VdiBlockMap.Zero);
            }
        }
    }

    /// <summary>
    /// The first content change of a session gives the image a new uuidModify, made durable before the change lands,
    /// so a child linked to the old content (its uuidParentModify) notices even if we crash half-way.
    /// </summary>
    private void BeginContentChange()
    {
        if (!_tableVerified)
        {
            BlockTableGuard.Refuse(this, "blocks array");
            _tableVerified = true;
        }
        if (_versionChanged || PreserveVersionOnWrite) return;
        _header.UuidModify = Guid.NewGuid();
        _header.WriteTo(File);
        File.Flush();
        _versionChanged = true;
    }

    public void Flush()
    {
        if (!IsWritable) return;
        FinishPlacements();
        File.Flush();
    }

    public void SetParent(ParentDescriptor parent)
    {
        EnsureWritable("set the parent");
        if (!IsDiffLike)
            throw new DiskImageException(ErrorKind.Unsupported, $"a {_type.ToString().ToLowerInvariant()} VDI has no parent link", Path, "VDIHEADER1");
        if (parent.Identity.Id == Guid.Empty)
            throw new DiskImageException(ErrorKind.Unsupported,
                $"the parent {parent.Path} has no identity a VDI can link to (uuidLinkage would be empty)", Path);
        ChainRules.CheckCompatible(Path, LogicalSectorSize, parent.Path, parent.LogicalSectorSize);
        ChainRules.CheckSameSize(Path, VirtualSize, parent.Path, parent.VirtualSize);
        // The locator is a hint the identity check verifies, so it may go first: a crash between the two writes leaves a
        // hint the header's identity rejects (the parent is then searched by identity), never a wrong parent.
        VdiParentLocator.Write(File, _header, parent.Path);
        _header.UuidLinkage = parent.Identity.Id;
        _header.UuidParentModify = parent.Identity.Version;
        _header.WriteTo(File);
        File.Flush();
        _parentPaths = VdiParentLocator.Read(File, _header);
    }

    /// <summary>New uuidCreate and uuidModify: the header is one write inside the first sector, so a crash keeps the old pair or the new.</summary>
    public void SetIdentity(Guid id)
    {
        EnsureWritable("set the identity");
        _header.UuidCreate = id;
        _header.UuidModify = Guid.NewGuid();
        _header.WriteTo(File);
        File.Flush();
        _versionChanged = true;
    }

    /// <summary>u32Type becomes normal and uuidLinkage/uuidParentModify empty, in the one header write: FREE blocks then read as zeros.</summary>
    public void DetachFromParent()
    {
        EnsureWritable("detach from the parent");
        if (!IsDiffLike)
            throw new DiskImageException(ErrorKind.Unsupported, $"a {_type.ToString().ToLowerInvariant()} VDI has no parent to detach from", Path, "VDIHEADER1");
        _header.RawType = (uint)VdiImageType.Normal;
        _header.UuidLinkage = Guid.Empty;
        _header.UuidParentModify = Guid.Empty;
        _header.WriteTo(File);
        File.Flush();
        _type = VdiImageType.Normal;
    }

    /// <summary>
    /// Growth in place when the block map has room before offData (VirtualBox aligns offData to 1 MiB): the new map
    /// entries are written FREE and made durable first (entries past cBlocks mean nothing), then cbDisk and cBlocks in
    /// the one header write. Otherwise false: moving data blocks out of the map's way is left to a rewrite.
    /// </summary>
    public bool TryResizeInPlace(long newSize)
    {
        EnsureWritable("resize");
        if (_type == VdiImageType.Fixed || newSize < _size) return false;
        long newBlocks = (newSize + _cbBlock - 1) / _cbBlock;
        uint oldBlocks = _header.CBlocks;
        if (newBlocks >= VdiBlockMap.Zero || _header.OffBlocks + 4 * newBlocks > _header.OffData) return false;
        var free = new byte[4 * (newBlocks - oldBlocks)];
        Array.Fill(free, (byte)0xFF);
        File.Write(free, _header.OffBlocks + 4L * oldBlocks);
        File.Flush();
        _header.CbDisk = (ulong)newSize;
        _header.CBlocks = (uint)newBlocks;
        _header.WriteTo(File);
        File.Flush();
        return true;
    }

    /// <summary>
    /// A cBlocksAllocated lower than the blocks the map uses (a crash between a map entry and the header write) would
    /// make VirtualBox put its next block over a used one: it is raised to cover every block slot in the file.
    /// </summary>
    public IReadOnlyList<string> RepairMetadata()
    {
        EnsureWritable("repair");
        long referenced = 0;
        for (uint b = 0; b < _header.CBlocks; b++)
            if (_map.Get(b) < VdiBlockMap.Zero) referenced++;
        if (referenced <= _header.CBlocksAllocated) return Array.Empty<string>();
        uint old = _header.CBlocksAllocated;
        _header.CBlocksAllocated = (uint)Math.Min(Math.Max(referenced, _nextBlock), _header.CBlocks);
        _header.WriteTo(File);
        File.Flush();
        return new[] { $"cBlocksAllocated {old} -> {_header.CBlocksAllocated}" };
    }
    /// <summary>
    /// Records the seal after the header (<see cref="VdiSealRecord"/>): no header field changes, so uuidModify, which
    /// children record as their parent's version, stays as it is.
    /// </summary>
    public void SetSeal(SealReasons seal, SoleChild soleChild = default)
    {
        EnsureWritable("change the seal");
        if (seal == SealReasons.None) soleChild = SoleChild.Unknown;
        if (seal == _seal && soleChild == _soleChild) return;
        if (!VdiSealRecord.HasRoom(_header))
            throw new DiskImageException(ErrorKind.Unsupported,
                "the header leaves no room for the seal record (a 0.x header, a header larger than 400 bytes, or a blocks array before byte 512)",
                Path, "VDIHEADER1");
        VdiSealRecord.Write(File, seal, soleChild);
        File.Flush();
        _seal = seal;
        _soleChild = soleChild;
    }


    // ---- check --------------------------------------------------------------------------------------------------

    public CheckReport Check() => VdiCheck.Run(this);

    internal VdiHeader Header => _header;
    internal VdiBlockMap Map => _map;
    internal VdiImageType VdiType => _type;
    internal long Stride => _stride;

    private void CheckRange(long offset, long length) => LayerGuards.CheckRange(this, offset, length);

    private void EnsureWritable(string operation) => LayerGuards.EnsureWritable(this, operation);

    public void Dispose() => this.CloseOnce(ref _disposed);
}
