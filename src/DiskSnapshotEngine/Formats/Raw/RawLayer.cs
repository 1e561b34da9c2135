using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Formats.Raw;

/// <summary>
/// A raw image as a layer. Holes of a sparse file are reported as zero extents (lseek SEEK_DATA/SEEK_HOLE), so
/// clone and export skip them instead of reading zeros.
/// </summary>
internal sealed class RawLayer : IDiskLayer, IResizable, IPlaceableLayer
{
    private const int NominalBlock = 1 << 20;
    private readonly long _size;

    internal RawLayer(IImageFile file, bool writable, int logicalSectorSize = 512)
    {
        File = file;
        IsWritable = writable;
        _size = file.Length;
        LogicalSectorSize = logicalSectorSize;
    }

    public string Path => File.Path;
    public ImageFormat Format => ImageFormat.Raw;
    public ImageType Type => ImageType.Fixed;
    public long VirtualSize => _size;
    public int LogicalSectorSize { get; }
    public int PhysicalSectorSize => LogicalSectorSize;
    public int BlockSize => NominalBlock;
    public bool IsWritable { get; }
    public ImageIdentity Identity => default;
    public ParentLink? ParentLink => null;
    public IImageFile File { get; }
    public bool PreserveVersionOnWrite { get; set; }

    public IReadOnlyList<KeyValuePair<string, string>> Details =>
        new[] { KeyValuePair.Create("file size", File.Length.ToString()) };

    public LayerExtent GetStatus(long offset, long length)
    {
        if (offset < 0 || length <= 0 || offset > _size - length) ThrowHelper.OutOfBounds(Path, offset, length, _size);
        var (isData, run) = SparseProbe.RunAt(File, offset, offset + length);
        return isData ? new LayerExtent(offset, run, ExtentKind.Data, offset) : new LayerExtent(offset, run, ExtentKind.Zero);
    }

    public (long Offset, long Length) GetWriteSpan(long offset, long length) => (offset, length);

    public void Write(long offset, ReadOnlySpan<byte> data)
    {
        this.EnsureWritable("write");
        this.CheckRange(offset, data.Length);
        File.Write(data, offset);
    }

    // Each byte lives at its virtual offset: every range is placed where it is.
    bool IPlaceableLayer.TryPlace(long offset, long length, out long fileOffset, out long placed)
    {
        this.EnsureWritable("write");
        if (offset < 0 || length <= 0 || offset > _size - length) ThrowHelper.OutOfBounds(Path, offset, length, _size);
        (fileOffset, placed) = (offset, length);
        return true;
    }

    public void WriteZeroes(long offset, long length)
    {
        this.EnsureWritable("write");
        File.WriteZeros(offset, length);
    }

    public void Flush() => File.Flush();

    /// <summary>The virtual size is the file's length: one truncate, made durable.</summary>
    public bool TryResizeInPlace(long newSize)
    {
        this.EnsureWritable("resize");
        File.SetLength(newSize);
        File.Flush();
        return true;
    }

    public void SetParent(ParentDescriptor parent) =>
        throw new DiskImageException(ErrorKind.Unsupported, "a raw image has no parent link", Path);

    public CheckReport Check() => new();

    public void Dispose() => File.Dispose();
}
