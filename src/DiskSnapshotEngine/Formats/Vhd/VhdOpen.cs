using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Formats.Vhd;

/// <summary>
/// Reads and validates the footer, dynamic disk header and parent locators of a VHD. Everything checked here is O(1):
/// the BAT and the sector bitmaps are read lazily. Nothing is written.
/// </summary>
internal static class VhdOpen
{
    /// <summary>Largest virtual size read: far above the spec's 2040 GB and Azure's 32 TiB, small enough for safe arithmetic.</summary>
    public const long MaxVirtualSize = 64L << 40;

    private const string FooterName = "hard disk footer", HeaderName = "dynamic disk header";

    /// <exception cref="DiskImageException">InvalidFormat (no footer), CorruptImage (inconsistent fields), Unsupported (unknown version or type).</exception>
    public static VhdLayout Read(IImageFile file)
    {
        string path = file.Path;
        long length = file.Length;
        if (length < VhdFooter.OldSize)
            ThrowHelper.InvalidFormat(path, FooterName, 0, $"the file holds {length} bytes, fewer than a VHD footer");

        var tail = new byte[VhdFooter.Size];
        int tailLength = (int)Math.Min(VhdFooter.Size, length);
        file.ReadExactly(tail.AsSpan(0, tailLength), length - tailLength, FooterName);
        VhdFooter? end = null;
        long endOffset = length;
        int endLength = 0;
        if (tailLength == VhdFooter.Size && VhdFooter.HasCookie(tail))
            (end, endOffset, endLength) = (VhdFooter.From(tail), length - VhdFooter.Size, VhdFooter.Size);
        else if (VhdFooter.HasCookie(tail.AsSpan(tailLength - VhdFooter.OldSize)))
            (end, endOffset, endLength) = (VhdFooter.From(tail.AsSpan(tailLength - VhdFooter.OldSize, VhdFooter.OldSize)), length - VhdFooter.OldSize, VhdFooter.OldSize);

        var head = new byte[VhdFooter.Size];
        file.ReadOrZero(head, 0);
        VhdFooter? copy = VhdFooter.HasCookie(head) ? VhdFooter.From(head) : null;
        bool copyUsable = copy is { ChecksumValid: true, DiskType: VhdDiskType.Dynamic or VhdDiskType.Differencing };

        VhdFooter footer;
        bool recovered = false;
        if (end is { ChecksumValid: true }) footer = end;
        else if (copyUsable)
        {
            // The end of the file was damaged (a torn footer write, a truncated copy): the copy at offset 0 is the same footer.
            footer = copy!;
            recovered = true;
        }
        else if (end is not null)
            throw Corrupt(path, FooterName, endOffset + VhdFooter.ChecksumOffset,
                $"Checksum 0x{end.Checksum:X8} does not match the footer (expected 0x{VhdFooter.ComputeChecksum(end.Raw, VhdFooter.ChecksumOffset):X8})");
        else if (copy is not null)
            throw Corrupt(path, FooterName, length - VhdFooter.Size,
                "no footer at the end of the file, and the copy at offset 0 is not a valid footer of a dynamic or differencing disk");
        else
            throw new DiskImageException(ErrorKind.InvalidFormat, "no VHD footer (cookie \"conectix\") at the end of the file", path, FooterName, length - VhdFooter.Size);

        long footerAt = recovered ? 0 : endOffset;
        ValidateFooter(path, footer, footerAt);
        long size = (long)footer.CurrentSize;
        if (footer.DiskType == VhdDiskType.Fixed)
        {
            if (size > endOffset)
                throw Corrupt(path, FooterName, footerAt + 48, $"Current Size {size} is larger than the {endOffset} bytes of disk data before the footer");
            return new VhdLayout(footer, endOffset, endLength, false, false, null, 0, false, [], []);
        }

        bool copyDiffers = !recovered && (!copyUsable || !copy!.Raw.SequenceEqual(footer.Raw));
        long limit = recovered ? length : endOffset;
        ulong dataOffset = footer.DataOffset;
        if (dataOffset < VhdFooter.Size || dataOffset > (ulong)(limit - VhdDynamicHeader.Size))
            throw Corrupt(path, FooterName, footerAt + 16, $"Data Offset {dataOffset} does not point at a dynamic disk header inside the file (the footer is at {limit})");
        long headerOffset = (long)dataOffset;
        var bytes = new byte[VhdDynamicHeader.Size];
        file.ReadExactly(bytes, headerOffset, HeaderName);
        var header = VhdDynamicHeader.From(bytes);
        bool headerRecovered = false;
        if (header.HasCookie && !header.ChecksumValid && HeaderCopy(file, header, limit) is { } headerCopy)
            (header, headerRecovered) = (headerCopy, true);
        ValidateHeader(path, header, headerOffset, size, limit);
        var metadata = new List<VhdRegion>
        {
            new("footer copy", 0, VhdFooter.Size),
            new(HeaderName, headerOffset, VhdDynamicHeader.Size),
            new("BAT", (long)header.TableOffset, SpanHelpers.AlignUp(4L * header.MaxTableEntries, 512)),
        };
        IReadOnlyList<VhdParentLocators.Decoded> locators = [];
        if (footer.DiskType == VhdDiskType.Differencing)
        {
            if (header.ParentUniqueId == Guid.Empty)
                throw Corrupt(path, HeaderName, headerOffset + 40, "a differencing disk with an empty Parent Unique ID names no parent");
            locators = VhdParentLocators.Read(file, header, headerOffset, limit);
            foreach (var l in locators)
                metadata.Add(new VhdRegion("parent locator data", (long)l.Entry.DataOffset, l.Entry.DataLength));
        }
        return new VhdLayout(footer, limit, recovered ? 0 : endLength, recovered, copyDiffers, header, headerOffset, headerRecovered, locators, metadata);
    }

    /// <summary>
    /// Where a footer read from the copy at offset 0 goes back: over the last sector of the file, or past the furthest
    /// block or structure when one reaches further (so nothing referenced is overwritten).
    /// </summary>
    public static long FooterRepairOffset(VhdLayer layer)
    {
        long at = Math.Max(SpanHelpers.AlignUp(layer.File.Length, 512) - VhdFooter.Size, 0);
        foreach (var r in layer.Metadata) at = Math.Max(at, SpanHelpers.AlignUp(r.End, 512));
        foreach (var (block, entry) in layer.Bat!.Scan())
            if (entry != VhdBat.Unused && layer.BlockStart(block) < layer.VirtualSize)
                at = Math.Max(at, layer.BlockOffset(block, entry) + layer.BitmapBytes + layer.BlockLength(block));
        return at;
    }

    /// <summary>
    /// The header a torn header write was writing or replacing: the copy beside the locators its second sector names (see
    /// <see cref="VhdParentLocators.HeaderCopySize"/>), accepted only when valid and equal to that sector.
    /// </summary>
    private static VhdDynamicHeader? HeaderCopy(IImageFile file, VhdDynamicHeader torn, long limit)
    {
        if (VhdParentLocators.HeaderCopyOffset(torn) is not long at || at + VhdDynamicHeader.Size > limit) return null;
        var bytes = new byte[VhdDynamicHeader.Size];
        file.ReadExactly(bytes, at, "dynamic disk header copy");
        var copy = VhdDynamicHeader.From(bytes);
        const int Second = 512;
        return copy.HasCookie && copy.ChecksumValid && copy.Raw[Second..].SequenceEqual(torn.Raw[Second..]) ? copy : null;
    }

    private static void ValidateFooter(string path, VhdFooter f, long at)
    {
        if (f.FileFormatVersion >> 16 != 1)
            throw new DiskImageException(ErrorKind.Unsupported, $"File Format Version 0x{f.FileFormatVersion:X8} is not supported (only 1.x)", path, FooterName, at + 12);
        if (f.DiskType is not (VhdDiskType.Fixed or VhdDiskType.Dynamic or VhdDiskType.Differencing))
            throw new DiskImageException(ErrorKind.Unsupported, $"Disk Type {(uint)f.DiskType} is not fixed (2), dynamic (3) or differencing (4)", path, FooterName, at + VhdFooter.DiskTypeOffset);
        ulong size = f.CurrentSize;
        if (size == 0 || size % 512 != 0)
            throw Corrupt(path, FooterName, at + 48, $"Current Size {size} is not a positive multiple of 512");
        if (size > MaxVirtualSize)
            throw new DiskImageException(ErrorKind.Unsupported, $"Current Size {size} is larger than the {MaxVirtualSize} bytes this engine handles", path, FooterName, at + 48);
    }

    private static void ValidateHeader(string path, VhdDynamicHeader h, long at, long size, long limit)
    {
        if (!h.HasCookie)
            throw Corrupt(path, HeaderName, at, "no dynamic disk header cookie \"cxsparse\" at the footer's Data Offset");
        if (!h.ChecksumValid)
            throw Corrupt(path, HeaderName, at + VhdDynamicHeader.ChecksumOffset,
                $"Checksum 0x{h.Checksum:X8} does not match the header (expected 0x{VhdFooter.ComputeChecksum(h.Raw, VhdDynamicHeader.ChecksumOffset):X8})");
        if (h.HeaderVersion != VhdDynamicHeader.Version)
            throw new DiskImageException(ErrorKind.Unsupported, $"Header Version 0x{h.HeaderVersion:X8} is not supported (only 0x00010000)", path, HeaderName, at + 24);
        uint bs = h.BlockSize;
        if (bs == 0 || bs % 512 != 0)
            throw Corrupt(path, HeaderName, at + 32, $"Block Size {bs} is not a positive multiple of 512");
        if ((bs & (bs - 1)) != 0 || bs > VhdLayer.MaxBlockSize)
            throw new DiskImageException(ErrorKind.Unsupported, $"Block Size {bs} is not a power of two up to {VhdLayer.MaxBlockSize}", path, HeaderName, at + 32);
        long needed = (size + bs - 1) / bs;
        if (h.MaxTableEntries < needed)
            throw Corrupt(path, HeaderName, at + 28, $"Max Table Entries {h.MaxTableEntries} is fewer than the {needed} blocks of {bs} bytes a disk of {size} bytes needs");
        ulong table = h.TableOffset;
        long tableBytes = SpanHelpers.AlignUp(4L * h.MaxTableEntries, 512);
        if (table < VhdFooter.Size || table > (ulong)limit || (long)table + tableBytes > limit)
            throw Corrupt(path, HeaderName, at + 16, $"Table Offset {table} with {h.MaxTableEntries} entries does not lie inside the file before the footer at {limit}");
        if ((long)table < at + VhdDynamicHeader.Size && at < (long)table + tableBytes)
            throw Corrupt(path, HeaderName, at + 16, $"the BAT at {table} overlaps the dynamic disk header at {at}");
    }

    private static DiskImageException Corrupt(string path, string structure, long offset, string message) =>
        new(ErrorKind.CorruptImage, message, path, structure, offset);
}
