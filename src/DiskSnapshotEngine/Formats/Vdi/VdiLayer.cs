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
/// Crash ordering of an allocation: block data, flush, map entry, flush, then the header's cBlocksAllocated. A crash
/// leaves either the old content (the map entry never landed; the block is a leak) or the new one; a header count
/// lower than what the map references is tolerated: new blocks go after the end of the file, never over a used one.
/// </summary>
public sealed class VdiLayer : IDiskLayer, IIdentityWritable, IParentDetachable, IResizable, IRepairable
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
    private long _nextBlock;
    private bool _versionChanged;
    private bool _headerDirty;
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
    }

    private bool IsDiffLike => _type is VdiImageType.Diff or VdiImageType.Undo;

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

    public ImageIdentity Identity => new(_header.UuidCreate, _header.UuidModify);

    public ParentLink? ParentLink => IsDiffLike
        ? new ParentLink(Array.Empty<string>(), _header.UuidLinkage, _header.UuidParentModify, null, "uuidParentModify")
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
            Add("u32Type", $"{h.RawType} ({_type.ToString().ToLowerInvariant()})");
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

    private bool IsAllocated(uint block) => _map.Get(block) < VdiBlockMap.Zero;

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
        while (data.Length > 0)
        {
            uint block = (uint)(offset / _cbBlock);
            long inBlock = offset - BlockStart(block);
            int n = (int)Math.Min(data.Length, BlockLength(block) - inBlock);
            WriteInBlock(block, inBlock, data[..n]);
            offset += n;
            data = data[n..];
        }
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
        // The data must be durable before a map entry points at it, and the entry before the header counts it.
        File.Flush();
        _map.Set(block, index);
        File.Flush();
        _nextBlock = Math.Max(_nextBlock, index + 1L);
        _header.CBlocksAllocated = (uint)Math.Min(_nextBlock, _header.CBlocks);
        _header.WriteTo(File);
        _headerDirty = true;
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
                FillZeros(off, BlockLength(block));
            }
            else if (entry == VdiBlockMap.Free && IsDiffLike)
            {
                BeginContentChange();
                _map.Set(block, VdiBlockMap.Zero);
            }
        }
    }

    private void FillZeros(long fileOffset, long length)
    {
        using var zeros = AlignedBufferPool.Rent((int)Math.Min(length, 1 << 20));
        zeros.Span.Clear();
        while (length > 0)
        {
            int n = (int)Math.Min(length, zeros.Capacity);
            File.Write(zeros.Span[..n], fileOffset);
            fileOffset += n;
            length -= n;
        }
    }

    /// <summary>
    /// The first content change of a session gives the image a new uuidModify, made durable before the change lands,
    /// so a child linked to the old content (its uuidParentModify) notices even if we crash half-way.
    /// </summary>
    private void BeginContentChange()
    {
        if (_versionChanged || PreserveVersionOnWrite) return;
        _header.UuidModify = Guid.NewGuid();
        _header.WriteTo(File);
        File.Flush();
        _versionChanged = true;
    }

    public void Flush()
    {
        if (!IsWritable) return;
        if (_headerDirty)
        {
            _header.WriteTo(File);
            _headerDirty = false;
        }
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
        ChainRules.CheckCompatible(Path, VirtualSize, LogicalSectorSize, parent.Path, parent.VirtualSize, parent.LogicalSectorSize);
        _header.UuidLinkage = parent.Identity.Id;
        _header.UuidParentModify = parent.Identity.Version;
        _header.WriteTo(File);
        File.Flush();
        _headerDirty = false;
    }

    /// <summary>New uuidCreate and uuidModify: the header is one write inside the first sector, so a crash keeps the old pair or the new.</summary>
    public void SetIdentity(Guid id)
    {
        EnsureWritable("set the identity");
        _header.UuidCreate = id;
        _header.UuidModify = Guid.NewGuid();
        _header.WriteTo(File);
        File.Flush();
        _headerDirty = false;
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
        _headerDirty = false;
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
        _headerDirty = false;
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
        _headerDirty = false;
        return new[] { $"cBlocksAllocated {old} -> {_header.CBlocksAllocated}" };
    }

    // ---- check --------------------------------------------------------------------------------------------------

    public CheckReport Check()
    {
        var report = new CheckReport();
        var h = _header;
        CheckHeader(report);
        uint cBlocks = h.CBlocks;
        var used = new System.Collections.BitArray((int)Math.Min(cBlocks, (uint)int.MaxValue));
        long referenced = 0, free = 0;
        long fileLength = File.Length;
        long slotsInFile = fileLength > h.OffData ? (fileLength - h.OffData) / _stride : 0;
        try
        {
            foreach (var (index, entry) in _map.Scan())
            {
                if (entry == VdiBlockMap.Free || entry == VdiBlockMap.Zero)
                {
                    free++;
                    continue;
                }
                long at = _map.EntryOffset(index);
                if (entry >= cBlocks)
                {
                    report.Add(CheckSeverity.Error, Path, "blocks array", at, $"entry {index} points at block {entry}, outside the {cBlocks} blocks of the image");
                    continue;
                }
                if (used[(int)entry])
                {
                    report.Add(CheckSeverity.Error, Path, "blocks array", at, $"entry {index} points at block {entry}, which another entry already uses");
                    continue;
                }
                used[(int)entry] = true;
                referenced++;
                long off = h.OffData + entry * _stride;
                if (off + _stride > fileLength)
                    report.Add(CheckSeverity.Error, Path, "blocks array", at, $"entry {index} points at block {entry} (file offset {off}), beyond the end of the file at {fileLength}");
            }
        }
        catch (DiskImageException e)
        {
            report.Add(CheckSeverity.Error, Path, "blocks array", e.FileOffset, e.Detail);
            return report;
        }

        if (_type == VdiImageType.Fixed && free > 0)
            report.Add(CheckSeverity.Warning, Path, "blocks array", h.OffBlocks, $"a fixed image has {free} unallocated blocks");
        if (referenced > h.CBlocksAllocated)
            report.Add(CheckSeverity.Leak, Path, "VDIHEADER1", h.CBlocksAllocatedOffset,
                $"cBlocksAllocated {h.CBlocksAllocated} is lower than the {referenced} blocks the map uses (an interrupted allocation; new blocks still go after the end of the file)");
        else if (referenced < h.CBlocksAllocated)
            report.Add(CheckSeverity.Leak, Path, "VDIHEADER1", h.CBlocksAllocatedOffset,
                $"cBlocksAllocated {h.CBlocksAllocated} counts {h.CBlocksAllocated - referenced} blocks no map entry uses (reclaimed by compact)");
        long unreferencedInFile = 0;
        for (long i = 0; i < Math.Min(slotsInFile, used.Length); i++)
            if (!used[(int)i]) unreferencedInFile++;
        if (unreferencedInFile > 0 && _type != VdiImageType.Fixed)
            report.Add(CheckSeverity.Leak, Path, "data blocks", h.OffData,
                $"{unreferencedInFile} blocks in the file are not used by any map entry (reclaimed by compact)");
        return report;
    }

    /// <summary>Header facts that open tolerates (the image reads correctly) but other readers may not.</summary>
    private void CheckHeader(CheckReport report)
    {
        var h = _header;
        string s = h.IsVersion0 ? "VDIHEADER0" : "VDIHEADER1";
        if (h.CbDisk % 512 != 0)
            report.Add(CheckSeverity.Warning, Path, s, null, $"cbDisk {h.CbDisk} is not a whole number of 512-byte sectors");
        if (h.LegacyGeometry.SectorSize is not (0 or 512))
            report.Add(CheckSeverity.Warning, Path, s, null, $"LegacyGeometry.cbSector is {h.LegacyGeometry.SectorSize}; VirtualBox and qemu expect 512");
        if ((_cbBlock & (_cbBlock - 1)) != 0)
            report.Add(CheckSeverity.Warning, Path, s, null, $"cbBlock {_cbBlock} is not a power of two (VirtualBox expects one)");
        if (IsDiffLike && !h.IsVersion0 && h.UuidParentModify == Guid.Empty)
            report.Add(CheckSeverity.Warning, Path, s, 440, "uuidParentModify is empty: a change of the parent cannot be detected");
        if (!IsDiffLike && h.UuidLinkage != Guid.Empty)
            report.Add(CheckSeverity.Warning, Path, s, null, $"a base image carries a uuidLinkage {{{h.UuidLinkage}}} (ignored)");
        if (h.UuidCreate == Guid.Empty)
            report.Add(CheckSeverity.Warning, Path, s, null, "uuidCreate is empty: children cannot link to this image");
    }

    // ---- helpers ------------------------------------------------------------------------------------------------

    private void CheckRange(long offset, long length)
    {
        if (offset < 0 || length < 0 || offset > _size - length) ThrowHelper.OutOfBounds(Path, offset, length, _size);
    }

    private void EnsureWritable(string operation)
    {
        if (!IsWritable) ThrowHelper.ReadOnly(Path, operation);
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        try
        {
            if (IsWritable) Flush();
        }
        finally
        {
            File.Dispose();
        }
    }
}
