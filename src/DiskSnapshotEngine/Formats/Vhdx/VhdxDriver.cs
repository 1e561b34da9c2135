using System.Buffers.Binary;
using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;
using static DiskSnapshotEngine.Formats.Vhdx.VhdxConstants;

namespace DiskSnapshotEngine.Formats.Vhdx;

/// <summary>Hyper-V VHDX (MS-VHDX): dynamic, fixed and differencing images.</summary>
internal sealed class VhdxDriver : IImageFormatDriver
{
    private const string Creator = "DiskSnapshotEngine";
    private const int DefaultBaseBlockSize = 32 << 20, DefaultChildBlockSize = 2 << 20;
    private const int MaxParentLocatorSize = 64 * 1024;
    private const long LogSize = MiB, MetadataSize = MiB;

    public ImageFormat Format => ImageFormat.Vhdx;

    /// <inheritdoc/>
    /// <remarks>None: the headers carry CRC-32C and the metadata holding the parent locator changes only through the log (spec 2.2.2, 2.3).</remarks>
    public long? LinkHeaderBytes(IDiskLayer layer) => null;
    public string Name => "vhdx";
    public IReadOnlyList<string> Extensions { get; } = new[] { ".vhdx", ".avhdx" };
    public bool Probe(ReadOnlySpan<byte> head) => VhdxFileIdentifier.HasSignature(head);

    // ---------------------------------------------------------------- open

    public IDiskLayer Open(IImageFile file, bool writable)
    {
        var fileId = VhdxFileIdentifier.Read(file);
        var (header, slot) = ReadHeaders(file);
        ValidateHeader(file, header);

        // A dirty log is replayed into memory first: the open is validated against the replayed view, and only a
        // successful read-write open writes the replay to the file (a failed open never writes).
        IImageFile view = file;
        VhdxLogSequence? sequence = null;
        if (header.LogGuid != Guid.Empty)
        {
            sequence = VhdxLogReader.FindActiveSequence(file, (long)header.LogOffset, header.LogLength, header.LogGuid);
            if (sequence is not null)
            {
                var overlay = new MemoryOverlayFile(file);
                VhdxLogReader.Apply(sequence, overlay);
                view = overlay;
            }
        }

        var layer = Parse(file, view, writable, fileId, header, slot);
        if (sequence is not null && writable)
        {
            VhdxLogReader.Apply(sequence, file);
            file.Flush();
            // Rebuild over the real file so later reads and writes see the replayed bytes directly.
            layer = Parse(file, file, writable, fileId, header, slot);
        }
        if (writable && header.LogGuid != Guid.Empty) layer.ClearLogGuidAfterReplay();
        return layer;
    }

    private static (VhdxHeader Header, int Slot) ReadHeaders(IImageFile file)
    {
        var buf = new byte[HeaderSize];
        file.ReadExactly(buf, Header1Offset, "header 1");
        var h1 = VhdxHeader.TryParse(buf);
        file.ReadExactly(buf, Header2Offset, "header 2");
        var h2 = VhdxHeader.TryParse(buf);
        if (h1 is null && h2 is null)
            ThrowHelper.Corrupt(file.Path, "header", Header1Offset, "neither header has a valid signature and CRC-32C checksum");
        // MS-VHDX 2.2.2.1: the valid header with the highest SequenceNumber is current.
        if (h2 is null || (h1 is not null && h1.SequenceNumber >= h2.SequenceNumber)) return (h1!, 0);
        return (h2, 1);
    }

    private static void ValidateHeader(IImageFile file, VhdxHeader h)
    {
        long at = Header1Offset;
        if (h.Version != 1)
            ThrowHelper.Unsupported(file.Path, "header", at, $"Version {h.Version} is not supported (only 1)");
        if (h.LogVersion != 0)
            ThrowHelper.Unsupported(file.Path, "header", at, $"LogVersion {h.LogVersion} is not supported (only 0)");
        if (h.LogLength == 0 || h.LogLength % MiB != 0 || h.LogOffset % MiB != 0 || h.LogOffset < HeaderAreaSize || h.LogOffset > long.MaxValue / 2)
            ThrowHelper.Corrupt(file.Path, "header", at, $"log of {h.LogLength} bytes at {h.LogOffset} is not 1 MiB aligned, or lies inside the header area");
        if ((long)h.LogOffset + h.LogLength > file.Length)
            ThrowHelper.Corrupt(file.Path, "header", at, $"log at {h.LogOffset} (+{h.LogLength}) lies past the end of the file ({file.Length} bytes)");
    }

    private static VhdxLayer Parse(IImageFile file, IImageFile view, bool writable, VhdxFileIdentifier fileId, VhdxHeader header, int slot)
    {
        string path = file.Path;
        var regions = ReadRegionTable(view);
        VhdxRegionTableEntry? bat = null, meta = null;
        foreach (var r in regions.Entries)
        {
            if (r.Guid == BatRegion) bat = bat is null ? r : DuplicateRegion(path, "BAT");
            else if (r.Guid == MetadataRegion) meta = meta is null ? r : DuplicateRegion(path, "metadata");
            else if (r.Required)
                ThrowHelper.Unsupported(path, "region table entry", RegionTable1Offset, $"unknown required region {{{r.Guid}}}");
        }
        if (bat is null) ThrowHelper.Corrupt(path, "region table", RegionTable1Offset, "no BAT region");
        if (meta is null) ThrowHelper.Corrupt(path, "region table", RegionTable1Offset, "no metadata region");
        // Plain arrays and loops here and below: generic collection code over these value types is not precompiled
        // (ReadyToRun), and every `dse info` would compile it at start-up.
        (string Name, long Offset, long Length)[] all =
        [
            ("BAT region", bat.FileOffset, bat.Length),
            ("metadata region", meta.FileOffset, meta.Length),
            ("log", (long)header.LogOffset, header.LogLength),
        ];
        for (int k = 0; k < 2; k++)
        {
            var (name, off, len) = all[k];
            if (off % MiB != 0 || len % MiB != 0 || len == 0)
                ThrowHelper.Corrupt(path, "region table entry", RegionTable1Offset, $"{name} of {len} bytes at {off} is not 1 MiB aligned");
            if (off < HeaderAreaSize)
                ThrowHelper.Corrupt(path, "region table entry", RegionTable1Offset, $"{name} at {off} lies inside the header area");
            if (off + len > view.Length)
                ThrowHelper.Corrupt(path, "region table entry", RegionTable1Offset, $"{name} at {off} (+{len}) lies past the end of the file ({view.Length} bytes)");
        }
        for (int i = 0; i < all.Length; i++)
            for (int j = i + 1; j < all.Length; j++)
                if (all[i].Offset < all[j].Offset + all[j].Length && all[j].Offset < all[i].Offset + all[i].Length)
                    ThrowHelper.Corrupt(path, "region table entry", RegionTable1Offset, $"the {all[i].Name} overlaps the {all[j].Name}");

        // Metadata (MS-VHDX 2.6).
        var tableBytes = new byte[MetadataTableSize];
        view.ReadExactly(tableBytes, meta.FileOffset, "metadata table");
        var table = VhdxMetadataTable.Parse(tableBytes, path, meta.FileOffset, meta.Length);
        byte[]? Item(Guid id, int exactLength, string name, bool isUser = false)
        {
            VhdxMetadataTableEntry? found = null;
            foreach (var entry in table.Entries)
                if (entry.ItemId == id && entry.IsUser == isUser) { found = entry; break; }
            if (found is not { } e) return null;
            if (exactLength > 0 && e.Length != exactLength)
                ThrowHelper.Corrupt(path, name, meta.FileOffset + e.Offset, $"item is {e.Length} bytes, expected {exactLength}");
            if (e.Length > MaxParentLocatorSize)
                ThrowHelper.Corrupt(path, name, meta.FileOffset + e.Offset, $"item of {e.Length} bytes is larger than {MaxParentLocatorSize}");
            var b = new byte[e.Length];
            view.ReadExactly(b, meta.FileOffset + e.Offset, name);
            return b;
        }
        foreach (var e in table.Entries)
        {
            bool known = !e.IsUser && (e.ItemId == FileParametersItem || e.ItemId == VirtualDiskSizeItem || e.ItemId == VirtualDiskIdItem
                || e.ItemId == LogicalSectorSizeItem || e.ItemId == PhysicalSectorSizeItem || e.ItemId == ParentLocatorItem);
            if (!known && e.IsRequired)
                ThrowHelper.Unsupported(path, "metadata table entry", meta.FileOffset, $"unknown required metadata item {{{e.ItemId}}}");
        }
        byte[] Required(Guid id, int len, string name) =>
            Item(id, len, name) ?? ThrowHelper.Corrupt<byte[]>(path, "metadata table", meta.FileOffset, $"the required {name} item is missing");

        long metaAt = meta.FileOffset;
        var parameters = VhdxFileParameters.Parse(Required(FileParametersItem, 8, "file parameters"));
        long virtualSize = (long)Math.Min(BinaryPrimitives.ReadUInt64LittleEndian(Required(VirtualDiskSizeItem, 8, "virtual disk size")), long.MaxValue);
        var diskId = new Guid(Required(VirtualDiskIdItem, 16, "page 83 data"));
        int logical = (int)BinaryPrimitives.ReadUInt32LittleEndian(Required(LogicalSectorSizeItem, 4, "logical sector size"));
        int physical = (int)BinaryPrimitives.ReadUInt32LittleEndian(Required(PhysicalSectorSizeItem, 4, "physical sector size"));
        uint bs = parameters.BlockSize;
        if (bs < MinBlockSize || bs > MaxBlockSize || (bs & (bs - 1)) != 0)
            ThrowHelper.Corrupt(path, "file parameters", metaAt, $"BlockSize {bs} is not a power of two between 1 MiB and 256 MiB");
        if (logical is not (512 or 4096))
            ThrowHelper.Corrupt(path, "logical sector size", metaAt, $"LogicalSectorSize {logical} is neither 512 nor 4096");
        if (physical is not (512 or 4096))
            ThrowHelper.Corrupt(path, "physical sector size", metaAt, $"PhysicalSectorSize {physical} is neither 512 nor 4096");
        if (virtualSize <= 0 || virtualSize > MaxVirtualSize || virtualSize % logical != 0)
            ThrowHelper.Corrupt(path, "virtual disk size", metaAt, $"VirtualDiskSize {virtualSize} is not a positive multiple of {logical} up to 64 TiB");

        VhdxParentLocator? locator = null;
        if (parameters.HasParent)
        {
            var raw = Item(ParentLocatorItem, 0, "parent locator")
                ?? ThrowHelper.Corrupt<byte[]>(path, "metadata table", metaAt, "HasParent is set but the parent locator item is missing");
            locator = VhdxParentLocator.Parse(raw, path, metaAt);
            if (locator.LocatorType != VhdxParentLocatorType)
                ThrowHelper.Unsupported(path, "parent locator", metaAt, $"LocatorType {{{locator.LocatorType}}} is not the VHDX parent locator");
            if (locator["parent_linkage"] is null)
                ThrowHelper.Corrupt(path, "parent locator", metaAt, "the parent_linkage entry is missing");
        }

        var seal = Item(DseSealItem, 0, "dse seal item", isUser: true) is { } sealValue ? SealValue.Parse(sealValue) : (SealReasons.None, SoleChild.Unknown);

        long chunkRatio = VhdxBat.ChunkRatioOf(logical, (int)bs);
        long payloadBlocks = VhdxBat.CeilDiv(virtualSize, bs);
        long needed = VhdxBat.EntriesFor(payloadBlocks, chunkRatio, parameters.HasParent) * 8;
        if (bat.Length < needed)
            ThrowHelper.Corrupt(path, "region table entry", RegionTable1Offset, $"the BAT region of {bat.Length} bytes is smaller than the {needed} bytes the disk needs");

        return new VhdxLayer(file, view, writable, fileId, header, slot, regions, bat, meta, table, parameters,
            virtualSize, diskId, logical, physical, locator, seal);
    }

    private static VhdxRegionTableEntry? DuplicateRegion(string path, string name) =>
        ThrowHelper.Corrupt<VhdxRegionTableEntry?>(path, "region table", RegionTable1Offset, $"the {name} region is listed twice");

    private static VhdxRegionTable ReadRegionTable(IImageFile view)
    {
        var buf = new byte[RegionTableSize];
        view.ReadExactly(buf, RegionTable1Offset, "region table 1");
        var t = VhdxRegionTable.TryParse(buf, view.Path, RegionTable1Offset);
        if (t is not null) return t;
        view.ReadExactly(buf, RegionTable2Offset, "region table 2");
        return VhdxRegionTable.TryParse(buf, view.Path, RegionTable2Offset)
            ?? ThrowHelper.Corrupt<VhdxRegionTable>(view.Path, "region table", RegionTable1Offset, "neither region table has a valid signature and CRC-32C checksum");
    }

    // ---------------------------------------------------------------- create

    public void CheckParent(string path, ParentDescriptor parent)
    {
        if (parent.Format != ImageFormat.Vhdx)
            throw new DiskImageException(ErrorKind.Unsupported, $"a differencing VHDX's parent must be a VHDX (MS-VHDX 2.6.2.6), not {parent.Format.Name()}", path);
    }

    public IDiskLayer Create(IImageFile file, ImageCreateOptions options, ParentDescriptor? parent)
    {
        bool diff = options.Type == ImageType.Differencing;
        if (diff)
        {
            if (parent is null) ThrowHelper.InvalidArgument("a differencing image needs a parent", file.Path);
            CheckParent(file.Path, parent);
            ChainRules.CheckCompatible(file.Path, options.LogicalSectorSize, parent.Path, parent.LogicalSectorSize);
        }
        int blockSize = options.BlockSize ?? (diff ? DefaultChildBlockSize : DefaultBaseBlockSize);
        if (blockSize < MinBlockSize || blockSize > MaxBlockSize || (blockSize & (blockSize - 1)) != 0)
            ThrowHelper.InvalidArgument($"VHDX block size must be a power of two between 1 MiB and 256 MiB (got {blockSize})", file.Path);
        int logical = options.LogicalSectorSize;
        int physical = options.PhysicalSectorSize ?? 4096;
        if (logical is not (512 or 4096)) ThrowHelper.InvalidArgument($"logical sector size must be 512 or 4096 (got {logical})", file.Path);
        if (physical is not (512 or 4096)) ThrowHelper.InvalidArgument($"physical sector size must be 512 or 4096 (got {physical})", file.Path);
        long size = options.VirtualSize;
        if (size <= 0 || size > MaxVirtualSize || size % logical != 0)
            ThrowHelper.InvalidArgument($"VHDX virtual size must be a positive multiple of {logical} up to 64 TiB (got {size})", file.Path);

        bool fixedImage = options.Type == ImageType.Fixed;
        long chunkRatio = VhdxBat.ChunkRatioOf(logical, blockSize);
        long payloadBlocks = VhdxBat.CeilDiv(size, blockSize);
        long batEntries = VhdxBat.EntriesFor(payloadBlocks, chunkRatio, diff);
        long logOffset = HeaderAreaSize, metaOffset = logOffset + LogSize, batOffset = metaOffset + MetadataSize;
        long batLength = SpanHelpers.AlignUp(batEntries * 8, MiB);
        if (batLength > uint.MaxValue) ThrowHelper.InvalidArgument("the BAT for this size and block size exceeds 4 GiB; use a larger block size", file.Path);
        long payloadStart = batOffset + batLength;
        long fileLength = fixedImage ? payloadStart + payloadBlocks * blockSize : payloadStart;

        // Header area: file identifier, two headers, two region tables.
        using var area = AlignedBufferPool.Rent((int)HeaderAreaSize);
        var head = area.Span[..(int)HeaderAreaSize];
        head.Clear();
        new VhdxFileIdentifier(Creator).Write(head);
        var identity = options.Identity;
        var header = new VhdxHeader(0, Guid.NewGuid(), identity?.Version ?? Guid.NewGuid(), Guid.Empty, 0, 1, (uint)LogSize, (ulong)logOffset);
        header.Write(head.Slice((int)Header1Offset, HeaderSize));
        (header with { SequenceNumber = 1 }).Write(head.Slice((int)Header2Offset, HeaderSize));
        var regions = new VhdxRegionTable(new[]
        {
            new VhdxRegionTableEntry(BatRegion, batOffset, (uint)batLength, true),
            new VhdxRegionTableEntry(MetadataRegion, metaOffset, (uint)MetadataSize, true),
        });
        regions.Write(head.Slice((int)RegionTable1Offset, RegionTableSize));
        regions.Write(head.Slice((int)RegionTable2Offset, RegionTableSize));

        // Metadata region: the table, then the items from 64 KiB on (MS-VHDX 2.6.1).
        var meta = new byte[MetadataTableSize + 4096 + MaxParentLocatorSize + 4096];
        var entries = new List<VhdxMetadataTableEntry>();
        uint at = MetadataTableSize;
        void Add(Guid id, ReadOnlySpan<byte> value, bool isVirtualDisk)
        {
            value.CopyTo(meta.AsSpan((int)at));
            entries.Add(new VhdxMetadataTableEntry(id, at, (uint)value.Length, false, isVirtualDisk, true));
            at += (uint)SpanHelpers.AlignUp(value.Length, 8);
        }
        Span<byte> tmp = stackalloc byte[16];
        new VhdxFileParameters((uint)blockSize, fixedImage, diff).Write(tmp);
        Add(FileParametersItem, tmp[..8], false);
        BinaryPrimitives.WriteUInt64LittleEndian(tmp, (ulong)size);
        Add(VirtualDiskSizeItem, tmp[..8], true);
        (identity?.Id ?? Guid.NewGuid()).TryWriteBytes(tmp);
        Add(VirtualDiskIdItem, tmp[..16], true);
        BinaryPrimitives.WriteUInt32LittleEndian(tmp, (uint)logical);
        Add(LogicalSectorSizeItem, tmp[..4], true);
        BinaryPrimitives.WriteUInt32LittleEndian(tmp, (uint)physical);
        Add(PhysicalSectorSizeItem, tmp[..4], true);
        if (options.Seal != SealReasons.None)
        {
            // A rewrite of a sealed image (compact) keeps its seal: a user item, not required (see VhdxConstants.DseSealItem).
            var value = SealValue.ToBytes(options.Seal, options.SoleChild);
            value.CopyTo(meta.AsSpan((int)at));
            entries.Add(new VhdxMetadataTableEntry(DseSealItem, at, (uint)value.Length, IsUser: true, IsVirtualDisk: false, IsRequired: false));
            at += (uint)SpanHelpers.AlignUp(value.Length, 8);
        }
        if (diff)
        {
            // The locator goes last, on its own 4 KiB sector, so SetParent rewrites it in place with room to grow.
            at = (uint)SpanHelpers.AlignUp(at, 4096);
            var locator = VhdxParentLocator.For(file.Path, parent!).ToBytes();
            if (locator.Length > MaxParentLocatorSize) ThrowHelper.InvalidArgument("the parent path is too long for a parent locator", file.Path);
            Add(ParentLocatorItem, locator, false);
        }
        new VhdxMetadataTable(entries).Write(meta);

        if (fixedImage) file.Reserve(fileLength);
        else file.SetLength(fileLength); // sparse: the BAT reads as zeros = PAYLOAD_BLOCK_NOT_PRESENT, in constant time
        // Only the structures are written; the rest of the header area stays a hole.
        file.Write(head[..4096], 0);
        file.Write(head.Slice((int)Header1Offset, HeaderSize), Header1Offset);
        file.Write(head.Slice((int)Header2Offset, HeaderSize), Header2Offset);
        file.Write(head.Slice((int)RegionTable1Offset, RegionTableSize), RegionTable1Offset);
        file.Write(head.Slice((int)RegionTable2Offset, RegionTableSize), RegionTable2Offset);
        file.Write(meta.AsSpan(0, (int)at), metaOffset);
        if (fixedImage) WriteFixedBat(file, batOffset, payloadBlocks, chunkRatio, blockSize, payloadStart);
        file.Flush();
        return Open(file, writable: true);
    }

    /// <summary>A fixed image maps every block FULLY_PRESENT, in order, at creation (sector bitmap entries stay not present).</summary>
    private static void WriteFixedBat(IImageFile file, long batOffset, long payloadBlocks, long chunkRatio, int blockSize, long payloadStart)
    {
        using var buffer = AlignedBufferPool.Rent((int)MiB);
        var span = buffer.Span[..(int)MiB];
        long index = 0, written = 0;
        long total = payloadBlocks + (payloadBlocks - 1) / chunkRatio;
        while (index < total)
        {
            span.Clear();
            int n = (int)Math.Min(total - index, MiB / 8);
            for (int i = 0; i < n; i++)
            {
                long e = index + i;
                if (e % (chunkRatio + 1) == chunkRatio) continue; // sector bitmap entry
                long block = e - e / (chunkRatio + 1);
                BinaryPrimitives.WriteUInt64LittleEndian(span[(i * 8)..], VhdxBatEntry.Make(VhdxBatEntry.FullyPresent, payloadStart + block * blockSize).Raw);
            }
            file.Write(span[..(n * 8)], batOffset + written);
            written += n * 8;
            index += n;
        }
    }
}
