using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Formats.Vhd;

/// <summary>
/// Microsoft VHD (Virtual Hard Disk Image Format Specification): fixed, dynamic and differencing disks, read and written.
/// A VHD is found by its footer cookie at the end of the file (the last 512 bytes, or 511 for images made before Virtual
/// PC 2004) or, for dynamic and differencing disks, by the footer copy at offset 0.
/// </summary>
internal sealed class VhdDriver : IImageFormatDriver
{
    /// <summary>Largest dynamic or differencing disk we create: the spec's 2040 GB (Hyper-V's and qemu's limit).</summary>
    public const long MaxDynamicSize = 2040L << 30;

    /// <summary>Largest fixed disk we create: Azure's upload limit (Hyper-V and qemu open only up to 2040 GiB).</summary>
    public const long MaxFixedSize = 32L << 40;

    private const long TableOffset = VhdFooter.Size + VhdDynamicHeader.Size;

    public ImageFormat Format => ImageFormat.Vhd;
    public string Name => "vhd";
    public IReadOnlyList<string> Extensions { get; } = new[] { ".vhd" };

    public bool Probe(ReadOnlySpan<byte> head) => VhdFooter.HasCookie(head);

    public bool ProbeTail(ReadOnlySpan<byte> tail) =>
        (tail.Length >= VhdFooter.Size && VhdFooter.HasCookie(tail[^VhdFooter.Size..]))
        || (tail.Length >= VhdFooter.OldSize && VhdFooter.HasCookie(tail[^VhdFooter.OldSize..]));

    public IDiskLayer Open(IImageFile file, bool writable)
    {
        // Nothing is written before everything is validated, so a failed open leaves the file as it was.
        var layout = VhdOpen.Read(file);
        if (writable && !file.CanWrite) ThrowHelper.ReadOnly(file.Path, "open for writing");
        return new VhdLayer(file, layout, writable);
    }

    public IDiskLayer Create(IImageFile file, ImageCreateOptions options, ParentDescriptor? parent)
    {
        string path = file.Path;
        if (options.LogicalSectorSize != 512)
            throw new DiskImageException(ErrorKind.Unsupported, $"VHD addresses 512-byte sectors only (asked for {options.LogicalSectorSize})", path);
        long size = options.VirtualSize;
        if (size <= 0 || size % 512 != 0)
            ThrowHelper.InvalidArgument($"virtual size {size} must be a positive multiple of 512", path);
        if (options.Type != ImageType.Differencing && parent is not null)
            ThrowHelper.InvalidArgument("only a differencing image has a parent", path);
        var id = options.Identity?.Id ?? Guid.NewGuid();
        var geometry = VhdDiskGeometry.For(size);
        var now = DateTime.UtcNow;

        if (options.Type == ImageType.Fixed)
        {
            if (size > MaxFixedSize)
                ThrowHelper.InvalidArgument($"a fixed VHD holds at most {MaxFixedSize} bytes (got {size})", path);
            if (options.BlockSize is int asked)
                ThrowHelper.InvalidArgument($"a fixed VHD has no blocks (its data, then the footer): a block size ({asked}) does not apply to it", path);
            var fixedFooter = VhdFooter.CreateNew(VhdDiskType.Fixed, VhdFooter.NoDataOffset, size, geometry, id, now);
            // Space first (fallocate), so a full disk fails before anything is written; the footer, the signature, last.
            file.Reserve(size + VhdFooter.Size);
            file.Write(fixedFooter.Raw, size);
            file.Flush();
            return Open(file, writable: true);
        }

        if (size > MaxDynamicSize)
            ThrowHelper.InvalidArgument($"a dynamic or differencing VHD holds at most {MaxDynamicSize} bytes (got {size}; a fixed VHD can be larger)", path);
        int blockSize = options.BlockSize ?? VhdDynamicHeader.DefaultBlockSize;
        if (blockSize < 4096 || blockSize > VhdLayer.MaxBlockSize || (blockSize & (blockSize - 1)) != 0)
            ThrowHelper.InvalidArgument($"VHD block size {blockSize} must be a power of two from 4096 to {VhdLayer.MaxBlockSize}", path);
        // Max Table Entries exactly what the size needs: Azure refuses a BAT longer than the disk.
        uint entries = (uint)((size + blockSize - 1) / blockSize);
        long end = TableOffset + SpanHelpers.AlignUp(4L * entries, 512);
        var header = VhdDynamicHeader.CreateNew(TableOffset, entries, (uint)blockSize);
        List<(uint Code, byte[] Data)> locators = [];
        List<VhdParentLocatorEntry> locatorEntries = [];
        var type = VhdDiskType.Dynamic;
        if (options.Type == ImageType.Differencing)
        {
            if (parent is null) ThrowHelper.InvalidArgument("a differencing image needs a parent", path);
            CheckRelink(path, size, parent);
            locators = VhdParentLocators.Build(path, parent.Path);
            locatorEntries = VhdParentLocators.Layout(locators, end, out end);
            Link(header, parent, locatorEntries);
            type = VhdDiskType.Differencing;
        }
        var footer = VhdFooter.CreateNew(type, VhdFooter.Size, size, geometry, id, now);

        WriteUnusedBat(file, entries);
        file.Write(header.Raw, VhdFooter.Size);
        if (locators.Count > 0) VhdParentLocators.Write(file, header, locators, locatorEntries);
        // The footer and its copy go last: until they land the file carries no VHD signature.
        file.Write(footer.Raw, end);
        file.Write(footer.Raw, 0);
        file.Flush();
        return Open(file, writable: true);
    }

    /// <summary>The BAT with every entry unused (0xFFFFFFFF), its padding to the sector included.</summary>
    private static void WriteUnusedBat(IImageFile file, uint entries)
    {
        const int Chunk = 1 << 20;
        long total = SpanHelpers.AlignUp(4L * entries, 512);
        using var buffer = AlignedBufferPool.Rent((int)Math.Min(Chunk, total));
        buffer.Span.Fill(0xFF);
        for (long done = 0; done < total; done += buffer.Capacity)
            file.Write(buffer.Span[..(int)Math.Min(buffer.Capacity, total - done)], TableOffset + done);
    }

    public void CheckParent(string path, ParentDescriptor parent) => CheckLink(path, parent);

    /// <summary>Refuses a parent a differencing VHD of <paramref name="size"/> bytes cannot name (create and relink).</summary>
    internal static void CheckRelink(string path, long size, ParentDescriptor parent)
    {
        CheckLink(path, parent);
        ChainRules.CheckSameSize(path, size, parent.Path, parent.VirtualSize);
    }

    // The rules that do not need the child's size, so a linked clone asks them before it seals the parent.
    private static void CheckLink(string path, ParentDescriptor parent)
    {
        // The Parent Unique ID names a VHD footer's Unique Id; Hyper-V opens VHD children of VHD parents only.
        if (parent.Format != ImageFormat.Vhd)
            throw new DiskImageException(ErrorKind.Unsupported, $"a differencing VHD's parent must be a VHD, not {parent.Format.Name()} ({parent.Path})", path);
        if (parent.Identity.Id == Guid.Empty)
            throw new DiskImageException(ErrorKind.Unsupported, $"the parent {parent.Path} has an empty Unique Id, which a child cannot name", path);
        ChainRules.CheckCompatible(path, 512, parent.Path, parent.LogicalSectorSize);
    }

    /// <summary>
    /// Fills the header's parent fields. Parent Time Stamp is, as the spec says and VirtualBox and DiscUtils write it, the
    /// parent file's modification time; readers do not verify it (a copy changes it), so neither do we.
    /// </summary>
    internal static void Link(VhdDynamicHeader header, ParentDescriptor parent, IReadOnlyList<VhdParentLocatorEntry> entries)
    {
        header.ParentUniqueId = parent.Identity.Id;
        header.ParentTimeStamp = System.IO.File.Exists(parent.Path) ? VhdTimeStamp.From(System.IO.File.GetLastWriteTimeUtc(parent.Path)) : 0;
        header.ParentUnicodeName = System.IO.Path.GetFileName(parent.Path);
        for (int i = 0; i < VhdDynamicHeader.LocatorCount; i++)
            header.SetLocator(i, i < entries.Count ? entries[i] : default);
        header.Seal();
    }
}
