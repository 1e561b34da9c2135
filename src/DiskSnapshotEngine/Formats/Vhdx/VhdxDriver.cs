using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Formats.Vhdx;

// Placeholder so the registry compiles while the driver is written; replaced by the real driver.
public sealed class VhdxDriver : IImageFormatDriver
{
    public ImageFormat Format => ImageFormat.Vhdx;
    public string Name => "vhdx";
    public IReadOnlyList<string> Extensions { get; } = new[] { ".vhdx" };
    public bool Probe(ReadOnlySpan<byte> head) => false;
    public IDiskLayer Open(IImageFile file, bool writable) => throw new DiskImageException(ErrorKind.Unsupported, "not implemented yet", file.Path);
    public IDiskLayer Create(IImageFile file, ImageCreateOptions options, ParentDescriptor? parent) => throw new DiskImageException(ErrorKind.Unsupported, "not implemented yet", file.Path);
}
