namespace DiskSnapshotEngine.IO;

/// <summary>
/// Copies a file range by sharing its extents (FICLONERANGE: XFS with reflink, btrfs) instead of reading and writing
/// it: the copy costs metadata only and takes no new space. Where the kernel or the file system refuses (another file
/// system, no reflink, unaligned ranges, another platform) the caller copies the bytes itself: the answer is false,
/// never an error.
/// </summary>
internal static class SharedExtents
{
    /// <summary>The alignment FICLONERANGE needs on every file system that offers it (the block size; 4 KiB here).</summary>
    public const int Alignment = 4096;

    /// <summary>True when the range may be shared at all: offsets and length on <see cref="Alignment"/>.</summary>
    public static bool IsAligned(long sourceOffset, long targetOffset, long length) =>
        length > 0 && ((sourceOffset | targetOffset | length) & (Alignment - 1)) == 0;

    /// <summary>
    /// Copies [<paramref name="sourceOffset"/>, +<paramref name="length"/>) of <paramref name="source"/> to
    /// <paramref name="targetOffset"/> of <paramref name="target"/> inside the kernel (copy_file_range): one page-cache
    /// copy instead of a read and a write through our buffers, what cp does. The data lands in the page cache, so this
    /// serves copies that are not synced at the end; a direct-I/O copy is better for those that are.
    /// </summary>
    /// <returns>Bytes copied: 0 when refused at once (another platform, file systems the kernel cannot copy between),
    /// fewer than <paramref name="length"/> when it stopped (the caller copies the rest itself and sees any real error).</returns>
    public static long TryCopy(ImageFile source, long sourceOffset, ImageFile target, long targetOffset, long length)
    {
        if (!OperatingSystem.IsLinux() || length <= 0) return 0;
        // A page-cache output allocates the range first (see ImageFile.UseAllocatedWrites): the copy is cheaper.
        target.Allocate(targetOffset, length);
        bool srcAdded = false, dstAdded = false;
        long done = 0;
        try
        {
            source.Handle.DangerousAddRef(ref srcAdded);
            target.Handle.DangerousAddRef(ref dstAdded);
            int fdIn = (int)source.Handle.DangerousGetHandle(), fdOut = (int)target.Handle.DangerousGetHandle();
            long from = sourceOffset, to = targetOffset;
            while (done < length)
            {
                // The kernel advances both offsets by what it copied; a short count (or 0) is not an error.
                nint n = Libc.CopyFileRange(fdIn, ref from, fdOut, ref to, (nuint)Math.Min(length - done, 1L << 30), 0);
                if (n <= 0) break;
                done += n;
            }
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            // No copy_file_range in this libc: the caller copies.
        }
        finally
        {
            if (srcAdded) source.Handle.DangerousRelease();
            if (dstAdded) target.Handle.DangerousRelease();
        }
        return done;
    }

    /// <summary>
    /// Makes [<paramref name="targetOffset"/>, +<paramref name="length"/>) of <paramref name="target"/> share the
    /// extents of [<paramref name="sourceOffset"/>, +length) of <paramref name="source"/>.
    /// </summary>
    /// <returns>True when done; false when the kernel refused (nothing changed then) or the platform has no such call.</returns>
    public static bool TryClone(ImageFile source, long sourceOffset, ImageFile target, long targetOffset, long length)
    {
        if (!OperatingSystem.IsLinux() || !IsAligned(sourceOffset, targetOffset, length)) return false;
        bool srcAdded = false, dstAdded = false;
        try
        {
            source.Handle.DangerousAddRef(ref srcAdded);
            target.Handle.DangerousAddRef(ref dstAdded);
            var range = new Libc.FileCloneRange
            {
                SourceFd = source.Handle.DangerousGetHandle(),
                SourceOffset = sourceOffset,
                SourceLength = length,
                DestinationOffset = targetOffset,
            };
            int fd = (int)target.Handle.DangerousGetHandle();
            // EXDEV (another file system), EOPNOTSUPP/ENOTTY/EINVAL (no reflink, unaligned), EPERM...: copy instead.
            return Libc.Ioctl(fd, Libc.FICLONERANGE, ref range) == 0;
        }
        finally
        {
            if (srcAdded) source.Handle.DangerousRelease();
            if (dstAdded) target.Handle.DangerousRelease();
        }
    }
}
