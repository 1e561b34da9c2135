using System.Runtime.InteropServices;

namespace DiskSnapshotEngine.IO;

/// <summary>SEEK_DATA / SEEK_HOLE on Linux; elsewhere (or for wrapped files) everything counts as data.</summary>
internal static class SparseProbe
{
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
        long r = LSeek(img.Handle, offset, Libc.SEEK_DATA);
        if (r < 0) return Marshal.GetLastPInvokeError() != Libc.ENXIO /* no data after offset */ && offset < file.Length;
        data = r;
        return true;
    }

    /// <summary>Finds the first hole at or after <paramref name="offset"/> (end of file counts as a hole).</summary>
    public static long NextHole(IImageFile file, long offset)
    {
        if (!OperatingSystem.IsLinux() || file is not ImageFile img) return file.Length;
        long r = LSeek(img.Handle, offset, Libc.SEEK_HOLE);
        return r < 0 ? file.Length : r;
    }

    private static long LSeek(Microsoft.Win32.SafeHandles.SafeFileHandle handle, long offset, int whence)
    {
        bool added = false;
        try
        {
            handle.DangerousAddRef(ref added);
            return Libc.LSeek((int)handle.DangerousGetHandle(), offset, whence);
        }
        finally
        {
            if (added) handle.DangerousRelease();
        }
    }
}
