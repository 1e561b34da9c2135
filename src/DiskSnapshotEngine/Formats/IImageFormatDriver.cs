using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Formats;

/// <summary>Parameters of a new image.</summary>
/// <param name="VirtualSize">Size of the virtual disk in bytes (a multiple of the logical sector size). For a child, the parent's.</param>
/// <param name="Type">Dynamic, fixed or differencing.</param>
/// <param name="BlockSize">Allocation unit, or null for the format's default.</param>
/// <param name="LogicalSectorSize">512 or 4096.</param>
/// <param name="PhysicalSectorSize">Advertised physical sector size, or null for the format's default.</param>
/// <param name="Identity">
/// Identity to give the new image, or null for fresh random ids (the normal case: a clone must be distinguishable from its source).
/// Set only when an image is rewritten in place under its old name (compact), so that its children still link to it.
/// </param>
public sealed record ImageCreateOptions(long VirtualSize, ImageType Type = ImageType.Dynamic, int? BlockSize = null,
    int LogicalSectorSize = 512, int? PhysicalSectorSize = null, ImageIdentity? Identity = null)
{
    /// <summary>
    /// Seal to record in the new image (see <see cref="SealReasons"/>). Set only when an image is rewritten in place
    /// under its old name (compact), so that it stays as sealed as it was; formats without a seal mark ignore it.
    /// </summary>
    public SealReasons Seal { get; init; }

    /// <summary>The sole linked clone <see cref="Seal"/> records (kept by compact with the seal).</summary>
    public SoleChild SoleChild { get; init; }
}

/// <summary>
/// One on-disk format: probe, open, create. Drivers are listed explicitly in <see cref="ImageFormats"/>; no reflection.
/// </summary>
public interface IImageFormatDriver
{
    /// <summary>The format this driver handles.</summary>
    ImageFormat Format { get; }

    /// <summary>Lower-case name used on the command line ("vhdx").</summary>
    string Name { get; }

    /// <summary>File extensions (with the dot, lower case) that select this format when creating.</summary>
    IReadOnlyList<string> Extensions { get; }

    /// <summary>True when the first bytes of a file (at least 4 KiB when the file has them) carry this format's signature.</summary>
    bool Probe(ReadOnlySpan<byte> head);

    /// <summary>
    /// True when the last bytes of a file (512, or all of a shorter file) carry this format's signature: for formats whose
    /// signature is at the end (a fixed VHD has only its footer). Most formats have none there.
    /// </summary>
    bool ProbeTail(ReadOnlySpan<byte> tail) => false;

    /// <summary>
    /// How many bytes at the start of <paramref name="layer"/>'s file hold everything its parent link is read from, for
    /// a reader without a lock that compares two reads of them (a header rewritten meanwhile differs); null when the
    /// format's headers carry checksums a torn read fails, so that one read suffices. 64 KiB by default: VDI's header
    /// and VHD's footer copy and dynamic header (whose Parent Unique ID links the child) sit in its first KiB or two.
    /// </summary>
    long? LinkHeaderBytes(IDiskLayer layer) => 64 << 10;

    /// <summary>
    /// Opens an image. Must be cheap (headers and metadata; maps are read lazily) so that parents can be probed and
    /// linked clones made in constant time. Takes ownership of <paramref name="file"/> on success only.
    /// A failed open never writes to the file.
    /// </summary>
    /// <exception cref="Errors.DiskImageException">InvalidFormat, CorruptImage, Unsupported, Io.</exception>
    IDiskLayer Open(IImageFile file, bool writable);

    /// <summary>
    /// Refuses a parent this format cannot link a child to (Unsupported), before anything is written: the linked clone
    /// asks it before sealing the parent, so a refused clone changes nothing. <see cref="Create"/> asks it too.
    /// No default: a driver that forgot it (or declared it with another signature) would accept every parent silently.
    /// </summary>
    /// <exception cref="Errors.DiskImageException">Unsupported.</exception>
    void CheckParent(string path, ParentDescriptor parent);

    /// <summary>
    /// Writes a new image into the empty <paramref name="file"/> and returns it opened for writing.
    /// For <see cref="ImageType.Differencing"/>, <paramref name="parent"/> describes the parent. Takes ownership of
    /// <paramref name="file"/> on success only.
    /// </summary>
    /// <exception cref="Errors.DiskImageException">InvalidArgument, Unsupported, DiskFull, Io.</exception>
    IDiskLayer Create(IImageFile file, ImageCreateOptions options, ParentDescriptor? parent);
}
