using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Formats.Raw;

/// <summary>Raw images: the file is the virtual disk. Chosen by extension only (no signature).</summary>
internal sealed class RawDriver : IImageFormatDriver
{
    public ImageFormat Format => ImageFormat.Raw;
    public string Name => "raw";
    public IReadOnlyList<string> Extensions { get; } = new[] { ".img", ".raw", ".bin" };
    public bool Probe(ReadOnlySpan<byte> head) => false;

    public IDiskLayer Open(IImageFile file, bool writable) => new RawLayer(file, writable);

    /// <summary>None: a raw file has no header and never a parent link, so no torn read can hide one (no second read).</summary>
    public long? LinkHeaderBytes(IDiskLayer layer) => null;

    public void CheckParent(string path, ParentDescriptor parent) => RefuseChild(path);

    public IDiskLayer Create(IImageFile file, ImageCreateOptions options, ParentDescriptor? parent)
    {
        if (options.Type == ImageType.Differencing) RefuseChild(file.Path);
        if (options.BlockSize is not null)
            ThrowHelper.InvalidArgument("a raw image has no allocation unit: --block-size does not apply to it", file.Path);
        // Dynamic raw is a sparse file; fixed raw has its space reserved (fallocate) so it cannot run out later.
        if (options.Type == ImageType.Fixed) file.Reserve(options.VirtualSize);
        else file.SetLength(options.VirtualSize);
        file.Flush();
        return new RawLayer(file, writable: true, options.LogicalSectorSize);
    }

    private static void RefuseChild(string path) =>
        throw new DiskImageException(ErrorKind.Unsupported, "a raw image cannot be a differencing child", path);
}
