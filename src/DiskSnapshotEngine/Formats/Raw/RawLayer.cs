using System.Runtime.InteropServices;
using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Formats.Raw;

/// <summary>
/// A raw image as a layer. Holes of a sparse file are reported as zero extents (lseek SEEK_DATA/SEEK_HOLE), so
/// clone and export skip them instead of reading zeros.
/// </summary>
public sealed class RawLayer : IDiskLayer, IResizable
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
        if (!IsWritable) ThrowHelper.ReadOnly(Path, "write");
        if (offset < 0 || offset > _size - data.Length) ThrowHelper.OutOfBounds(Path, offset, data.Length, _size);
        File.Write(data, offset);
    }

    public void WriteZeroes(long offset, long length)
    {
        if (!IsWritable) ThrowHelper.ReadOnly(Path, "write");
        FillZeros(File, offset, length);
    }

    private static void FillZeros(IImageFile file, long offset, long length)
    {
        using var zeros = AlignedBufferPool.Rent(1 << 20);
        zeros.Span.Clear();
        while (length > 0)
        {
            int n = (int)Math.Min(length, zeros.Capacity);
            file.Write(zeros.Span[..n], offset);
            offset += n;
            length -= n;
        }
    }

    public void Flush() => File.Flush();

    /// <summary>The virtual size is the file's length: one truncate, made durable.</summary>
    public bool TryResizeInPlace(long newSize)
    {
        if (!IsWritable) ThrowHelper.ReadOnly(Path, "resize");
        File.SetLength(newSize);
        File.Flush();
        return true;
    }

    public void SetParent(ParentDescriptor parent) =>
        throw new DiskImageException(ErrorKind.Unsupported, "a raw image has no parent link", Path);

    public CheckReport Check() => new();

    public void Dispose() => File.Dispose();
}

/// <summary>SEEK_DATA / SEEK_HOLE on Linux; elsewhere (or for wrapped files) everything counts as data.</summary>
internal static class SparseProbe
{
    private const int SEEK_DATA = 3, SEEK_HOLE = 4;

    /// <summary>
    /// The run starting at <paramref name="offset"/>, capped at <paramref name="end"/>: data up to the next hole, or a hole
    /// up to the next data (a hole reads as zeros). Always at least one byte long.
    /// </summary>
    public static (bool IsData, long Length) RunAt(IImageFile file, long offset, long end)
    {
        if (!TryNextData(file, offset, out long data) || data >= end) return (false, end - offset);
        if (data > offset) return (false, data - offset);
        return (true, Math.Min(end, Math.Max(offset + 1, NextHole(file, offset))) - offset);
    }

    /// <summary>Finds the first data byte at or after <paramref name="offset"/>; false when only a hole remains.</summary>
    public static bool TryNextData(IImageFile file, long offset, out long data)
    {
        data = offset;
        if (!OperatingSystem.IsLinux() || file is not ImageFile img) return offset < file.Length;
        long r = LSeek(img.Handle, offset, SEEK_DATA);
        if (r < 0) return Marshal.GetLastPInvokeError() != 6 /* ENXIO: no data after offset */ && offset < file.Length;
        data = r;
        return true;
    }

    /// <summary>Finds the first hole at or after <paramref name="offset"/> (end of file counts as a hole).</summary>
    public static long NextHole(IImageFile file, long offset)
    {
        if (!OperatingSystem.IsLinux() || file is not ImageFile img) return file.Length;
        long r = LSeek(img.Handle, offset, SEEK_HOLE);
        return r < 0 ? file.Length : r;
    }

    private static long LSeek(Microsoft.Win32.SafeHandles.SafeFileHandle handle, long offset, int whence)
    {
        bool added = false;
        try
        {
            handle.DangerousAddRef(ref added);
            return lseek((int)handle.DangerousGetHandle(), offset, whence);
        }
        finally
        {
            if (added) handle.DangerousRelease();
        }
    }

    [DllImport("libc", SetLastError = true)]
    private static extern long lseek(int fd, long offset, int whence);
}
