using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Formats.Raw;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Formats;

/// <summary>The explicit list of format drivers, and format selection by extension or signature.</summary>
public static class ImageFormats
{
    // Raw is last: it has no signature and is chosen only by extension.
    private static readonly IImageFormatDriver[] s_drivers = { new Vhdx.VhdxDriver(), new Vdi.VdiDriver(), new Qcow2.Qcow2Driver(), new Vhd.VhdDriver(), new RawDriver() };

    /// <summary>Every driver, in probing order.</summary>
    public static IReadOnlyList<IImageFormatDriver> All => s_drivers;

    /// <summary>
    /// True when the file name's extension is one a driver creates (lower case, with the dot): the one list that
    /// creating, the parent search and the child search share. <paramref name="linkableOnly"/> leaves out raw, whose
    /// images never record a parent nor carry an identity a child could name.
    /// </summary>
    public static bool HasImageExtension(string path, bool linkableOnly = false)
    {
        string ext = System.IO.Path.GetExtension(path).ToLowerInvariant();
        return s_drivers.Any(d => (!linkableOnly || d.Format != ImageFormat.Raw) && d.Extensions.Contains(ext));
    }

    /// <summary>The driver for a format.</summary>
    public static IImageFormatDriver Get(ImageFormat format) =>
        s_drivers.FirstOrDefault(d => d.Format == format)
        ?? throw new DiskImageException(ErrorKind.Unsupported, $"no driver for format {format.Name()}");

    /// <summary>The driver for a name given on the command line (vhdx, vdi, qcow2, raw).</summary>
    public static IImageFormatDriver ByName(string name) =>
        s_drivers.FirstOrDefault(d => string.Equals(d.Name, name, StringComparison.OrdinalIgnoreCase))
        ?? throw new DiskImageException(ErrorKind.InvalidArgument,
            $"unknown format '{name}' (known: {string.Join(", ", s_drivers.Select(d => d.Name))})");

    /// <summary>Chooses the format of a file to be created from its extension.</summary>
    /// <exception cref="DiskImageException">InvalidArgument when the extension names no format.</exception>
    public static IImageFormatDriver ForNewFile(string path)
    {
        string ext = System.IO.Path.GetExtension(path).ToLowerInvariant();
        return s_drivers.FirstOrDefault(d => d.Extensions.Contains(ext))
            ?? throw new DiskImageException(ErrorKind.InvalidArgument,
                $"cannot tell the format from the extension '{ext}' (use one of {string.Join(", ", s_drivers.SelectMany(d => d.Extensions))})", path);
    }

    /// <summary>Identifies an existing file by its signature; a file without one is raw only when its extension says so.</summary>
    /// <exception cref="DiskImageException">InvalidFormat when no signature matches and the extension is not a raw one.</exception>
    public static IImageFormatDriver Detect(IImageFile file)
    {
        Span<byte> head = stackalloc byte[4096];
        head = head[..file.Read(head, 0)];
        foreach (var d in s_drivers)
            if (d.Format != ImageFormat.Raw && d.Probe(head)) return d;
        // A signature at the end of the file (a fixed VHD's footer) is looked for after every head signature.
        Span<byte> tail = stackalloc byte[512];
        tail = tail[..file.Read(tail, Math.Max(0, file.Length - tail.Length))];
        foreach (var d in s_drivers)
            if (d.Format != ImageFormat.Raw && d.ProbeTail(tail)) return d;
        // A format dse does not read is named, whatever the file is called (a .img that is a VMDK is no raw disk).
        if (ForeignFormats.Identify(head, tail) is { } foreign)
            throw new DiskImageException(ErrorKind.Unsupported, ForeignFormats.Describe(foreign), file.Path, "file signature", 0);
        string ext = System.IO.Path.GetExtension(file.Path).ToLowerInvariant();
        var raw = Get(ImageFormat.Raw);
        if (raw.Extensions.Contains(ext)) return raw;
        // An ISO is raw data, readable under a raw name; under another name it is named.
        Span<byte> iso = stackalloc byte[5];
        if (file.Length >= ForeignFormats.IsoOffset + iso.Length && ForeignFormats.IsIso(iso[..file.Read(iso, ForeignFormats.IsoOffset)]))
            throw new DiskImageException(ErrorKind.Unsupported, ForeignFormats.Describe(ForeignFormats.IsoName), file.Path, "file signature", ForeignFormats.IsoOffset);
        throw new DiskImageException(ErrorKind.InvalidFormat,
            $"not a disk image dse knows: no {string.Join(", ", s_drivers.Where(d => d.Format != ImageFormat.Raw).Select(d => d.Name.ToUpperInvariant()))} signature, " +
            "nor that of another known format (raw disks are opened only under the .img or .raw extension)",
            file.Path, "file signature", 0);
    }
}
