using System.Buffers.Binary;
using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Formats.Qcow2;

/// <summary>
/// Writes a new, empty version 3 qcow2 laid out as qemu-img lays it out: header cluster, refcount table, refcount
/// blocks counting every metadata cluster (16-bit refcounts), then the L1 table; no L2 table or data yet.
/// </summary>
internal static class Qcow2Creator
{
    public static IDiskLayer Create(IImageFile file, ImageCreateOptions options, ParentDescriptor? parent)
    {
        string path = file.Path;
        if (options.LogicalSectorSize != 512)
            throw new DiskImageException(ErrorKind.Unsupported, $"qcow2 presents 512-byte sectors only (asked for {options.LogicalSectorSize})", path);
        if (options.Type == ImageType.Fixed)
            throw new DiskImageException(ErrorKind.Unsupported, "a fixed (preallocated) qcow2 is not supported here; create a dynamic one", path);
        if (options.VirtualSize <= 0 || options.VirtualSize % 512 != 0 || options.VirtualSize > Qcow2Header.MaxVirtualSize)
            ThrowHelper.InvalidArgument($"virtual size {options.VirtualSize} must be a positive multiple of 512 up to {Qcow2Header.MaxVirtualSize}", path);
        int clusterSize = options.BlockSize ?? Qcow2Driver.DefaultClusterSize;
        if (clusterSize < 512 || clusterSize > 1 << Qcow2Header.MaxClusterBits || (clusterSize & (clusterSize - 1)) != 0)
            ThrowHelper.InvalidArgument($"qcow2 cluster size {clusterSize} must be a power of two from 512 to {1 << Qcow2Header.MaxClusterBits}", path);
        int bits = System.Numerics.BitOperations.Log2((uint)clusterSize);

        string? backingName = null, backingFormat = null;
        if (options.Type == ImageType.Differencing)
        {
            if (parent is null) ThrowHelper.InvalidArgument("a differencing qcow2 needs a parent", path);
            if (parent.LogicalSectorSize != 512)
                throw new DiskImageException(ErrorKind.Unsupported,
                    $"the parent {parent.Path} has {parent.LogicalSectorSize}-byte sectors; a qcow2 child presents 512-byte sectors", path);
            ChainRules.CheckCompatible(path, options.LogicalSectorSize, parent.Path, parent.LogicalSectorSize);
            backingFormat = Qcow2FormatNames.ToQemu(parent.Format)
                ?? throw new DiskImageException(ErrorKind.Unsupported, $"qemu cannot read a {parent.Format.Name()} backing file", path);
            backingName = Qcow2Driver.BackingName(path, parent.Path);
        }
        else if (parent is not null) ThrowHelper.InvalidArgument("only a differencing image has a parent", path);

        var g = new Qcow2Geometry(path, bits, extendedL2: false, refcountOrder: 4, options.VirtualSize);
        long l1Entries = g.L1EntriesNeeded;
        if (l1Entries * 8 > Qcow2Tables.MaxL1Bytes)
            ThrowHelper.InvalidArgument($"virtual size {options.VirtualSize} needs an L1 table above qemu's {Qcow2Tables.MaxL1Bytes >> 20} MiB limit with {clusterSize}-byte clusters (use larger clusters)", path);
        long l1Clusters = Math.Max(1, (l1Entries * 8 + clusterSize - 1) / clusterSize);
        // Metadata clusters: header, refcount table, refcount blocks, L1. The blocks must count all of them.
        long tableClusters = 1, blocks = 1;
        for (int round = 0; round < 16; round++)
        {
            long total = 1 + tableClusters + blocks + l1Clusters;
            long b = (total + g.RefcountsPerBlock - 1) / g.RefcountsPerBlock;
            long t = Math.Max(1, (b * 8 + clusterSize - 1) / clusterSize);
            if (b == blocks && t == tableClusters) break;
            blocks = b;
            tableClusters = t;
        }
        long tableOffset = clusterSize, blocksOffset = tableOffset + tableClusters * clusterSize;
        long l1Offset = blocksOffset + blocks * clusterSize;
        long metadataClusters = l1Offset / clusterSize + l1Clusters;

        var header = Qcow2Header.CreateNew(bits, options.VirtualSize, (uint)l1Entries, l1Offset, tableOffset, (uint)tableClusters);
        var extensions = Qcow2HeaderExtensions.Empty();
        extensions.SetBackingFormat(backingFormat);
        // A rewrite of a sealed image (compact) keeps its seal.
        if (options.Seal != Block.SealReasons.None) extensions.SetSeal(options.Seal, options.SoleChild);
        // qcow2 has no image id: dse keeps its own in a child, so that a parent's seal can recognise it as its sole clone.
        if (parent is not null) extensions.SetId(options.Identity is { Id: var id } && id != Guid.Empty ? id : Guid.NewGuid());
        var headerCluster = new byte[clusterSize];
        int at = header.HeaderLength;
        at += extensions.WriteTo(headerCluster.AsSpan(at));
        if (backingName is not null)
        {
            int n = System.Text.Encoding.UTF8.GetBytes(backingName, headerCluster.AsSpan(at));
            if (n > Qcow2Header.MaxBackingFileSize || at + n > clusterSize)
                ThrowHelper.InvalidArgument($"the backing file name ({n} bytes) is too long for a qcow2 header (at most {Qcow2Header.MaxBackingFileSize})", path);
            header.BackingFileOffset = (ulong)at;
            header.BackingFileSize = (uint)n;
        }
        header.Raw.CopyTo(headerCluster);

        // Refcount blocks and table, then the empty L1 (the file's length), and the header last: until it lands the
        // file has no magic and cannot be mistaken for an image.
        var block = new byte[clusterSize];
        var table = new byte[tableClusters * clusterSize];
        for (long b = 0; b < blocks; b++)
        {
            Array.Clear(block);
            for (long c = b * g.RefcountsPerBlock; c < Math.Min(metadataClusters, (b + 1) * g.RefcountsPerBlock); c++)
                BinaryPrimitives.WriteUInt16BigEndian(block.AsSpan((int)(c - b * g.RefcountsPerBlock) * 2), 1);
            file.Write(block, blocksOffset + b * clusterSize);
            BinaryPrimitives.WriteUInt64BigEndian(table.AsSpan((int)b * 8), (ulong)(blocksOffset + b * clusterSize));
        }
        file.Write(table, tableOffset);
        file.SetLength(metadataClusters * clusterSize);
        file.Flush();
        file.Write(headerCluster.AsSpan(0, Math.Max(at + (int)header.BackingFileSize, header.HeaderLength)), 0);
        file.Flush();
        return new Qcow2Driver().Open(file, writable: true);
    }
}
