using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Formats.Vhd;

/// <summary>
/// A VHD (Virtual Hard Disk Image Format Specification) as a layer.
/// <code>
/// fixed:        [disk data: Current Size bytes][footer]
/// dynamic/diff: [footer copy][dynamic header][BAT][parent locators][block: sector bitmap | data]...[footer]
/// </code>
/// A new block goes where the footer is (its data aligned to 4 KiB for direct I/O); the footer moves to the new end of
/// the file. Crash ordering of an allocation: footer at the new end, flush; data and sector bitmap, flush; BAT entry.
/// The file therefore always ends with a valid footer (the old one stays in place until the block covers it), and a block
/// becomes visible only when its data is durable; an interrupted allocation leaves unreferenced space (a leak). In a
/// block already allocated the order is data, flush, bitmap bits. The footer's content never changes after creation,
/// so the copy at offset 0 stays equal to it and recovers it when the end of the file is damaged (the first change
/// writes it back). The identity is the footer's Unique Id, which is also the version: it is what a child records (Parent
/// Unique ID) and what Hyper-V, VirtualBox and libvhdi verify; VHD keeps no content version, so writes leave it as is.
/// </summary>
internal sealed partial class VhdLayer : IDiskLayer, IIdentityWritable
{
    /// <summary>Largest block accepted: the chain's copy-on-write buffer is one block.</summary>
    public const int MaxBlockSize = 256 << 20;

    // Where the data of a new block starts: 4 KiB lets bulk writes go around the page cache (O_DIRECT) and matches 4Kn disks.
    private const long DataAlignment = 4096;

    // Sectors become present 8 at a time (4 KiB, one whole bitmap byte): libvhdi (vhdimount 20210425) misreads a clear bit
    // that follows a set one in the same bitmap byte, so we never write such a byte. Reads honour every single bit.
    private const int PresenceUnit = 4096;

    private VhdFooter _footer;
    private readonly long _headerOffset;
    private readonly BlockTable? _bat;
    private readonly VhdSectorBitmaps? _bitmaps;
    private readonly VhdDiskType _type;
    private readonly long _size;
    private readonly int _blockSize, _bitmapBytes;
    private readonly List<VhdRegion> _metadata;
    private VhdDynamicHeader? _header;
    private IReadOnlyList<VhdParentLocators.Decoded> _locators;
    private ParentLink? _parentLink;
    private long _footerOffset;
    private bool _dirty, _disposed;

    internal VhdLayer(IImageFile file, VhdLayout layout, bool writable)
    {
        File = file;
        IsWritable = writable;
        _footer = layout.Footer;
        _type = layout.Footer.DiskType;
        _size = (long)layout.Footer.CurrentSize;
        _header = layout.Header;
        _headerOffset = layout.HeaderOffset;
        _locators = layout.Locators;
        _metadata = layout.Metadata.ToList();
        _footerOffset = layout.FooterOffset;
        FooterLength = layout.FooterLength;
        FooterRecovered = layout.FooterRecovered;
        FooterCopyDiffers = layout.FooterCopyDiffers;
        HeaderRecovered = layout.HeaderRecovered;
        if (_header is { } h)
        {
            _blockSize = (int)h.BlockSize;
            _bitmapBytes = VhdSectorBitmaps.SizeFor(_blockSize);
            _bat = VhdBat.Open(file, h);
            _bitmaps = new VhdSectorBitmaps(file, _bitmapBytes);
        }
        else _blockSize = VhdDynamicHeader.DefaultBlockSize;
        if (IsDifferencing) _parentLink = BuildParentLink();
    }

    public string Path => File.Path;
    public ImageFormat Format => ImageFormat.Vhd;
    public ImageType Type => _type switch
    {
        VhdDiskType.Fixed => ImageType.Fixed,
        VhdDiskType.Dynamic => ImageType.Dynamic,
        _ => ImageType.Differencing,
    };
    public long VirtualSize => _size;
    public int LogicalSectorSize => 512;
    public int PhysicalSectorSize => 512;

    /// <summary>The block size of a dynamic or differencing disk; a nominal 2 MiB for a fixed one.</summary>
    public int BlockSize => _blockSize;
    public bool IsWritable { get; }
    public IImageFile File { get; }
    public ImageIdentity Identity => new(_footer.UniqueIdGuid, _footer.UniqueIdGuid);
    public ParentLink? ParentLink => _parentLink;

    /// <summary>Has no effect: a VHD has no content version to preserve (see the type's remarks).</summary>
    public bool PreserveVersionOnWrite { get; set; }

    public IReadOnlyList<KeyValuePair<string, string>> Details => VhdDetails.Of(this);

    public CheckReport Check() => VhdCheck.Run(this);

    internal VhdFooter Footer => _footer;
    internal VhdDynamicHeader? Header => _header;
    internal long HeaderOffset => _headerOffset;
    internal BlockTable? Bat => _bat;
    internal int BitmapBytes => _bitmapBytes;
    internal long FooterOffset => _footerOffset;
    internal int FooterLength { get; private set; }
    internal bool FooterRecovered { get; private set; }
    internal bool FooterCopyDiffers { get; private set; }
    internal bool HeaderRecovered { get; private set; }
    internal IReadOnlyList<VhdRegion> Metadata => _metadata;
    internal IReadOnlyList<VhdParentLocators.Decoded> Locators => _locators;
    internal bool IsDifferencing => _type == VhdDiskType.Differencing;

    /// <summary>Where blocks must end: the footer, or the end of the file while a recovered footer is not yet rewritten.</summary>
    internal long DataLimit => FooterRecovered ? File.Length : _footerOffset;

    // ---- status -------------------------------------------------------------------------------------------------

    public LayerExtent GetStatus(long offset, long length)
    {
        CheckRange(offset, length);
        if (_bat is null) return new LayerExtent(offset, length, ExtentKind.Data, offset);
        long end = offset + length;
        var (kind, runEnd, fileAt) = Classify(offset, end);
        while (runEnd < end)
        {
            var (k, e, f) = Classify(runEnd, end);
            if (k != kind || (k == ExtentKind.Data && f != fileAt + (runEnd - offset))) break;
            runEnd = e;
        }
        return new LayerExtent(offset, runEnd - offset, kind, fileAt);
    }

    /// <summary>The run that starts at <paramref name="at"/> inside its block, capped at <paramref name="end"/>.</summary>
    private (ExtentKind Kind, long End, long FileOffset) Classify(long at, long end)
    {
        uint block = (uint)(at / _blockSize);
        long start = BlockStart(block);
        long stop = Math.Min(end, start + BlockLength(block));
        var absent = IsDifferencing ? ExtentKind.NotPresent : ExtentKind.Zero;
        uint entry = _bat!.Get(block);
        if (entry == VhdBat.Unused) return (absent, stop, -1);
        long bitmapAt = BlockOffset(block, entry);
        var bitmap = _bitmaps!.Get(bitmapAt);
        int first = (int)((at - start) / 512);
        int run = VhdSectorBitmaps.RunLength(bitmap, first, (int)((stop - start + 511) / 512));
        long runEnd = Math.Min(stop, start + (first + (long)run) * 512);
        return VhdSectorBitmaps.IsSet(bitmap, first)
            ? (ExtentKind.Data, runEnd, bitmapAt + _bitmapBytes + (at - start))
            : (absent, runEnd, -1);
    }

    internal long BlockStart(uint block) => (long)block * _blockSize;

    internal long BlockLength(uint block) => Math.Min(_blockSize, _size - BlockStart(block));

    private int BlockSectors(uint block) => (int)((BlockLength(block) + 511) / 512);

    // Every bit of a block, past the end of the disk too, as qemu writes a whole block's bitmap.
    private int AllSectors => _blockSize / 512;

    /// <summary>File offset of a block's sector bitmap, validated: inside the file before the footer, clear of all metadata.</summary>
    internal long BlockOffset(uint block, uint entry)
    {
        long off = (long)entry * 512;
        long length = _bitmapBytes + BlockLength(block);
        if (off + length > DataLimit)
            ThrowHelper.Corrupt(Path, "BAT", _bat!.EntryOffset(block),
                $"entry {block} points at sector {entry} (file offset {off}): the block would end at {off + length}, past the footer at {DataLimit}");
        foreach (var r in _metadata)
            if (r.Overlaps(off, length))
                ThrowHelper.Corrupt(Path, "BAT", _bat!.EntryOffset(block), $"entry {block} points at sector {entry} (file offset {off}), inside the {r.Name}");
        return off;
    }

    // ---- writes -------------------------------------------------------------------------------------------------

    public (long Offset, long Length) GetWriteSpan(long offset, long length)
    {
        CheckRange(offset, length);
        if (length == 0 || _bat is null) return (offset, length);
        long end = offset + length;
        uint first = (uint)(offset / _blockSize), last = (uint)((end - 1) / _blockSize);
        long start = SpanIn(first, offset, Math.Min(end, BlockStart(first) + BlockLength(first))).Start;
        long stop = SpanIn(last, Math.Max(offset, BlockStart(last)), end).Stop;
        return (start, stop - start);
    }

    // A dynamic disk allocates a block whole (its bitmap fully set, as qemu writes it, so readers that ignore bitmaps agree);
    // a differencing one takes whole presence units, and less only where every sector touched is already present.
    private (long Start, long Stop) SpanIn(uint block, long from, long to)
    {
        uint entry = _bat!.Get(block);
        long start = BlockStart(block);
        if (entry == VhdBat.Unused && !IsDifferencing) return (start, start + BlockLength(block));
        if (entry != VhdBat.Unused)
        {
            var bitmap = _bitmaps!.Get(BlockOffset(block, entry));
            if (VhdSectorBitmaps.AllSet(bitmap, (int)((from - start) / 512), (int)((to - start + 511) / 512))) return (from, to);
        }
        return (SpanHelpers.AlignDown(from, PresenceUnit), Math.Min(start + BlockLength(block), SpanHelpers.AlignUp(to, PresenceUnit)));
    }

    /// <summary>The sectors [first, end) widened to whole presence units (whole bitmap bytes).</summary>
    private static (int First, int End) Units(int first, int end) => (first & ~7, (end + 7) & ~7);

    public void Write(long offset, ReadOnlySpan<byte> data)
    {
        EnsureWritable("write");
        CheckRange(offset, data.Length);
        BeginChange();
        if (_bat is null)
        {
            File.Write(data, offset);
            _dirty = true;
            return;
        }
        foreach (var p in BlockPieces.Of(offset, data.Length, _blockSize))
            WriteInBlock((uint)p.Block, p.InBlock, data.Slice(p.Start, p.Length));
    }

    private void WriteInBlock(uint block, long inBlock, ReadOnlySpan<byte> piece)
    {
        int first = (int)(inBlock / 512), end = (int)((inBlock + piece.Length + 511) / 512);
        long pieceEnd = inBlock + piece.Length;
        bool unitAligned = inBlock % PresenceUnit == 0 && (pieceEnd % PresenceUnit == 0 || pieceEnd == BlockLength(block));
        uint entry = _bat!.Get(block);
        if (entry != VhdBat.Unused)
        {
            long at = BlockOffset(block, entry);
            bool present = VhdSectorBitmaps.AllSet(_bitmaps!.Get(at), first, end);
            if (!present && !unitAligned) MustAsk($"a write into sectors block {block} does not hold must cover whole {PresenceUnit}-byte units");
            File.Write(piece, at + _bitmapBytes + inBlock);
            _dirty = true;
            if (present) return;
            // The data must be durable before the bits that make it visible.
            File.Flush();
            var (f, e) = Units(first, end);
            _bitmaps!.SetRange(at, f, e);
            return;
        }
        if (IsDifferencing)
        {
            if (!unitAligned) MustAsk($"a write into unallocated block {block} must cover whole {PresenceUnit}-byte units");
            Allocate(block, inBlock, piece, first, end);
            return;
        }
        if (inBlock != 0 || piece.Length != BlockLength(block)) MustAsk($"a write into unallocated block {block} must cover the whole block");
        // An unallocated block of a dynamic disk already reads as zeros.
        if (SpanHelpers.IsAllZero(piece)) return;
        Allocate(block, 0, piece, 0, AllSectors);
    }

    private void MustAsk(string message) =>
        throw new DiskImageException(ErrorKind.InvalidArgument, message + " (ask GetWriteSpan first)", Path);

    /// <summary>Allocates <paramref name="block"/> at the end of the file with sectors [first, end) present, holding <paramref name="data"/> at <paramref name="inBlock"/>.</summary>
    private void Allocate(uint block, long inBlock, ReadOnlySpan<byte> data, int first, int end)
    {
        long at = SpanHelpers.AlignUp(_footerOffset + _bitmapBytes, DataAlignment) - _bitmapBytes;
        long newFooter = at + _bitmapBytes + _blockSize;
        if (at / 512 >= VhdBat.Unused)
            throw new DiskImageException(ErrorKind.Unsupported,
                $"a new block at file offset {at} is beyond what a BAT entry can address (2 TiB of file)", Path, "BAT");
        MoveFooter(newFooter);
        // A new block lies past the old end of the file, so its data area reads as zeros: zeros need no write.
        if (data.Length > 0 && !SpanHelpers.IsAllZero(data)) File.Write(data, at + _bitmapBytes + inBlock);
        var bitmap = new byte[_bitmapBytes];
        var (f, e) = Units(first, end);
        bitmap.AsSpan(f / 8, (e - f) / 8).Fill(0xFF);
        File.Write(bitmap, at);
        File.Flush();
        _bat!.Set(block, (uint)(at / 512));
        _bitmaps!.Put(at, bitmap);
        _dirty = true;
    }

    /// <summary>
    /// A new Unique Id: the footer at the end, which readers use, is written and made durable first, then a dynamic
    /// disk's copy at offset 0; a crash between leaves a copy that differs from the footer (check warns; it reads fine).
    /// </summary>
    public void SetIdentity(Guid id)
    {
        EnsureWritable("set the identity");
        if (FooterRecovered || FooterLength != VhdFooter.Size)
            throw new DiskImageException(ErrorKind.Unsupported, "the footer at the end of the file is damaged or old-style; clone the image instead", Path, "footer");
        var footer = _footer.WithUniqueId(id);
        File.Write(footer.Raw, _footerOffset);
        File.Flush();
        if (_bat is not null)
        {
            File.Write(footer.Raw, 0);
            File.Flush();
        }
        _footer = footer;
    }

    /// <summary>Writes the footer at <paramref name="newOffset"/> (past everything) and makes it durable before the space before it is used.</summary>
    private void MoveFooter(long newOffset)
    {
        File.Write(_footer.Raw, newOffset);
        File.Flush();
        _footerOffset = newOffset;
        FooterLength = VhdFooter.Size;
    }

    public void WriteZeroes(long offset, long length)
    {
        EnsureWritable("write zeroes");
        CheckRange(offset, length);
        BeginChange();
        if (_bat is null)
        {
            FillZeros(offset, length);
            return;
        }
        long end = offset + length;
        if (offset % _blockSize != 0 || (end % _blockSize != 0 && end != _size))
            ThrowHelper.InvalidArgument($"WriteZeroes range [{offset}, {end}) is not block-aligned (block size {_blockSize})", Path);
        for (long pos = offset; pos < end; pos += _blockSize)
        {
            uint block = (uint)(pos / _blockSize);
            uint entry = _bat.Get(block);
            if (entry == VhdBat.Unused)
            {
                // A child must hide its parent: a block with every bit set over a data area that is still a hole.
                if (IsDifferencing) Allocate(block, 0, ReadOnlySpan<byte>.Empty, 0, AllSectors);
                continue;
            }
            long at = BlockOffset(block, entry);
            FillZeros(at + _bitmapBytes, BlockLength(block));
            if (VhdSectorBitmaps.AllSet(_bitmaps!.Get(at), 0, BlockSectors(block))) continue;
            File.Flush();
            _bitmaps!.SetRange(at, 0, AllSectors);
        }
    }

    private void FillZeros(long fileOffset, long length)
    {
        File.WriteZeros(fileOffset, length);
        _dirty = true;
    }

    public void Flush()
    {
        if (!IsWritable || !_dirty) return;
        File.Flush();
        _dirty = false;
    }

    // ---- parent -------------------------------------------------------------------------------------------------

    public void SetParent(ParentDescriptor parent)
    {
        EnsureWritable("set the parent");
        if (!IsDifferencing)
            throw new DiskImageException(ErrorKind.Unsupported, $"a {_type.ToString().ToLowerInvariant()} VHD has no parent link", Path, "hard disk footer");
        VhdDriver.CheckRelink(Path, _size, parent);
        BeginChange();
        // The new locators, and a copy of the header naming them, go to fresh space at the end of the file (the footer
        // moves past them first), then one header write switches to them: a crash leaves the old link or the new one (a
        // header torn between its sectors is read from the copy its locator entries lead to), the old data becomes a leak.
        var data = VhdParentLocators.Build(Path, parent.Path);
        long at = SpanHelpers.AlignUp(_footerOffset, 512);
        var entries = VhdParentLocators.Layout(data, at, out long end);
        MoveFooter(end);
        var header = _header!.Clone();
        VhdDriver.Link(header, parent, entries);
        VhdParentLocators.Write(File, header, data, entries);
        File.Flush();
        File.Write(header.Raw, _headerOffset);
        File.Flush();
        _header = header;
        for (int i = 0; i < data.Count; i++)
            _metadata.Add(new VhdRegion("parent locator data", (long)entries[i].DataOffset, data[i].Data.Length));
        _locators = VhdParentLocators.Read(File, header, _headerOffset, _footerOffset);
        _parentLink = BuildParentLink();
    }

    private ParentLink BuildParentLink() =>
        new(VhdParentLocators.Candidates(Path, _locators, _header!.ParentUnicodeName), null, _header.ParentUniqueId, null, "Parent Unique ID");

    /// <summary>
    /// Before the first change: writes back a header read from its copy (torn relink) and a footer read from the copy at
    /// offset 0 (damaged end of file). Not at open, so an open that fails later (a parent not found) or a session that
    /// only reads leaves the file as it was.
    /// </summary>
    private void BeginChange()
    {
        if (HeaderRecovered)
        {
            File.Write(_header!.Raw, _headerOffset);
            File.Flush();
            HeaderRecovered = false;
        }
        if (!FooterRecovered) return;
        MoveFooter(VhdOpen.FooterRepairOffset(this));
        FooterRecovered = false;
    }

    private void CheckRange(long offset, long length) => LayerGuards.CheckRange(this, offset, length);

    private void EnsureWritable(string operation) => LayerGuards.EnsureWritable(this, operation);

    public void Dispose() => this.CloseOnce(ref _disposed);
}
