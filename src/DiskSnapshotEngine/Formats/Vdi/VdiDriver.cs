using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Formats.Vdi;

/// <summary>
/// VirtualBox VDI: normal (dynamic), fixed and differencing images, versions 1.1 and 1.0 read/write, 0.x read-only.
/// A differencing VDI names its parent only by identity (uuidLinkage = the parent's uuidCreate) and verifies it by
/// uuidParentModify = the parent's uuidModify; the chain finds the file by searching.
/// </summary>
internal sealed class VdiDriver : IImageFormatDriver
{
    /// <summary>Default cbBlock, what VirtualBox and qemu use (qemu reads nothing else).</summary>
    public const int DefaultBlockSize = 1 << 20;

    // VirtualBox aligns the blocks array and the data area to 1 MiB (VDI_DATA_ALIGN); we lay files out the same way.
    private const long DataAlign = 1 << 20;

    public ImageFormat Format => ImageFormat.Vdi;
    public string Name => "vdi";
    public IReadOnlyList<string> Extensions { get; } = new[] { ".vdi" };

    public bool Probe(ReadOnlySpan<byte> head) => VdiPreHeader.HasSignature(head);

    public IDiskLayer Open(IImageFile file, bool writable)
    {
        // Nothing is written before the header is validated, so a failed open leaves the file as it was.
        var header = VdiHeader.Read(file);
        if (writable && header.IsVersion0)
            ThrowHelper.Unsupported(file.Path, "VDIPREHEADER", VdiPreHeader.VersionOffset, "VDI 0.x images are read-only here (convert them first)");
        if (writable && !file.CanWrite)
            ThrowHelper.ReadOnly(file.Path, "open for writing");
        return new VdiLayer(file, header, writable);
    }

    public void CheckParent(string path, ParentDescriptor parent)
    {
        if (parent.Identity.Id == Guid.Empty)
            throw new DiskImageException(ErrorKind.Unsupported,
                $"the parent {parent.Path} has no identity a VDI can link to ({parent.Format.Name()} images carry none)", path);
    }

    public IDiskLayer Create(IImageFile file, ImageCreateOptions options, ParentDescriptor? parent)
    {
        string path = file.Path;
        if (options.LogicalSectorSize != 512)
            throw new DiskImageException(ErrorKind.Unsupported, $"VDI addresses 512-byte sectors only (asked for {options.LogicalSectorSize})", path);
        if (options.VirtualSize <= 0 || options.VirtualSize % 512 != 0)
            ThrowHelper.InvalidArgument($"virtual size {options.VirtualSize} must be a positive multiple of 512", path);
        int cbBlock = options.BlockSize ?? DefaultBlockSize;
        if (cbBlock < 512 || cbBlock > VdiLayer.MaxBlockSize || (cbBlock & (cbBlock - 1)) != 0)
            ThrowHelper.InvalidArgument($"VDI block size {cbBlock} must be a power of two from 512 to {VdiLayer.MaxBlockSize}", path);
        long blocks = (options.VirtualSize + cbBlock - 1) / cbBlock;
        if (blocks >= VdiBlockMap.Zero)
            ThrowHelper.InvalidArgument($"virtual size {options.VirtualSize} needs {blocks} blocks of {cbBlock}, more than a VDI block map holds", path);
        uint cBlocks = (uint)blocks;

        VdiImageType type;
        Guid linkage = Guid.Empty, parentModify = Guid.Empty;
        switch (options.Type)
        {
            case ImageType.Differencing:
                if (parent is null) ThrowHelper.InvalidArgument("a differencing VDI needs a parent", path);
                CheckParent(path, parent);
                ChainRules.CheckCompatible(path, options.LogicalSectorSize, parent.Path, parent.LogicalSectorSize);
                ChainRules.CheckSameSize(path, options.VirtualSize, parent.Path, parent.VirtualSize);
                type = VdiImageType.Diff;
                linkage = parent.Identity.Id;
                parentModify = parent.Identity.Version;
                break;
            case ImageType.Fixed:
                type = VdiImageType.Fixed;
                break;
            default:
                type = VdiImageType.Normal;
                break;
        }
        if (options.Type != ImageType.Differencing && parent is not null)
            ThrowHelper.InvalidArgument("only a differencing image has a parent", path);

        long offBlocks = DataAlign;
        long offData = SpanHelpers.AlignUp(offBlocks + 4L * cBlocks, DataAlign);
        if (offData > uint.MaxValue)
            ThrowHelper.InvalidArgument($"virtual size {options.VirtualSize} needs a block map too large for offData (use a larger block size)", path);
        var identity = options.Identity ?? new ImageIdentity(Guid.NewGuid(), Guid.NewGuid());
        var header = VdiHeader.CreateNew(type, (ulong)options.VirtualSize, (uint)cbBlock, cBlocks, offBlocks, offData,
            identity.Id, identity.Version, linkage, parentModify);

        if (type == VdiImageType.Fixed)
        {
            // Space first (fallocate), so a full disk fails before anything is written.
            file.Reserve(offData + (long)cBlocks * cbBlock);
            header.CBlocksAllocated = cBlocks;
        }
        WriteMap(file, offBlocks, cBlocks, type == VdiImageType.Fixed);
        if (parent is not null) VdiParentLocator.Write(file, header, parent.Path);
        // A rewrite of a sealed image (compact) keeps its seal.
        if (options.Seal != SealReasons.None) VdiSealRecord.Write(file, options.Seal, options.SoleChild);
        // The header goes last: until it lands the file carries no signature and cannot be mistaken for an image.
        header.WriteTo(file);
        if (file.Length < offData) file.SetLength(offData);
        file.Flush();
        return new VdiLayer(file, header, writable: true);
    }

    /// <summary>
    /// Writes the whole blocks array with a few large writes from one pooled buffer: all FREE (dynamic, differencing),
    /// or the identity mapping (fixed). 64 GiB at 1 MiB blocks is a 256 KiB map: one write.
    /// </summary>
    private static void WriteMap(IImageFile file, long offBlocks, uint cBlocks, bool identity)
    {
        const int Chunk = 1 << 20;
        using var buffer = AlignedBufferPool.Rent((int)Math.Min(Chunk, 4L * cBlocks));
        var span = buffer.Span;
        if (!identity) span.Fill(0xFF);
        uint perChunk = (uint)(span.Length / 4);
        for (long first = 0; first < cBlocks; first += perChunk)
        {
            uint n = (uint)Math.Min(perChunk, cBlocks - first);
            if (identity)
                for (uint i = 0; i < n; i++)
                    System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(span[(int)(i * 4)..], (uint)(first + i));
            file.Write(span[..(int)(n * 4)], offBlocks + 4L * first);
        }
    }
}
