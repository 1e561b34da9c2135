using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Formats.Vhd;

/// <summary>
/// The disks Azure accepts for upload, from its documentation: a VHD (not VHDX), fixed, whose virtual size is a whole
/// number of MiB ("The size must be a whole number (in MBs)"), with the 512-byte footer right after the data, so the file
/// is N MiB + 512 bytes (Add-AzVhd); a managed disk's upload size is 20 MiB to 32 TiB plus the footer.
/// </summary>
public static class AzureVhdProfile
{
    /// <summary>Azure's size unit: 1 MiB.</summary>
    public const long Unit = 1 << 20;

    /// <summary>Smallest managed disk Azure creates from an upload.</summary>
    public const long MinSize = 20L << 20;

    /// <summary>Largest managed disk Azure creates from an upload.</summary>
    public const long MaxSize = 32L << 40;

    /// <summary>The size rounded up to a whole number of MiB.</summary>
    public static long RoundUp(long size) => SpanHelpers.AlignUp(size, Unit);

    /// <summary>The options of the fixed VHD Azure accepts for a disk of at least <paramref name="size"/> bytes (rounded up).</summary>
    /// <exception cref="DiskImageException">InvalidArgument when the rounded size is outside Azure's range.</exception>
    public static ImageCreateOptions CreateOptions(long size, string path)
    {
        long rounded = RoundUp(size);
        if (rounded < MinSize || rounded > MaxSize)
            ThrowHelper.InvalidArgument($"Azure takes disks of {MinSize >> 20} MiB to {MaxSize >> 40} TiB (asked for {size} bytes)", Path.GetFullPath(path)); // the full path, as every error names its file
        return new ImageCreateOptions(rounded, ImageType.Fixed);
    }

    /// <summary>Why Azure would refuse the file, one reason a line; empty when it would accept it. Never writes.</summary>
    /// <exception cref="DiskImageException">FileNotFound, Locked, Io.</exception>
    public static IReadOnlyList<string> Check(string path)
    {
        using var file = ImageFile.Open(path, writable: false);
        var reasons = new List<string>();
        long length = file.Length;
        var tail = new byte[VhdFooter.Size];
        int n = (int)Math.Min(tail.Length, length);
        file.ReadExactly(tail.AsSpan(0, n), length - n, "hard disk footer");
        if (n < VhdFooter.Size || !VhdFooter.HasCookie(tail))
        {
            if (n >= VhdFooter.OldSize && VhdFooter.HasCookie(tail.AsSpan(n - VhdFooter.OldSize)))
                reasons.Add("the footer is 511 bytes long (Virtual PC before 2004): Azure needs the 512-byte footer");
            else
                reasons.Add($"the file does not end with a VHD footer: Azure accepts only fixed VHD files ({Describe(file)})");
            return reasons;
        }
        var footer = VhdFooter.From(tail);
        if (!footer.ChecksumValid)
            reasons.Add($"the footer Checksum 0x{footer.Checksum:X8} is wrong (expected 0x{VhdFooter.ComputeChecksum(footer.Raw, VhdFooter.ChecksumOffset):X8})");
        if (footer.FileFormatVersion >> 16 != 1)
            reasons.Add($"File Format Version 0x{footer.FileFormatVersion:X8} is not 1.x");
        if (footer.DiskType != VhdDiskType.Fixed)
            reasons.Add($"Disk Type {(uint)footer.DiskType} ({footer.DiskType.ToString().ToLowerInvariant()}): Azure accepts only fixed VHDs (dse clone IMAGE NEW.vhd --profile azure makes one)");
        long size = (long)Math.Min(footer.CurrentSize, long.MaxValue);
        if (size % Unit != 0)
            reasons.Add($"the virtual size {size} bytes is not a whole number of MiB (the next one is {RoundUp(size)})");
        if (size < MinSize || size > MaxSize)
            reasons.Add($"the virtual size {size} bytes is outside the {MinSize >> 20} MiB to {MaxSize >> 40} TiB of an Azure managed disk");
        if (footer.DiskType == VhdDiskType.Fixed && length != size + VhdFooter.Size)
            reasons.Add($"the file is {length} bytes, not the virtual size plus the 512-byte footer ({size + VhdFooter.Size})");
        return reasons;
    }

    private static string Describe(IImageFile file)
    {
        try { return $"this is a {ImageFormats.Detect(file).Name.ToUpperInvariant()} file"; }
        catch (DiskImageException) { return "this is no image format the engine knows"; }
    }
}
