using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Operations;

/// <summary>
/// Full clone: flattens a whole chain into one independent image of any format. Only ranges some layer holds as
/// data are read; ranges that read as zeros (ZERO state, holes, never written) are not written, nor are data
/// blocks that turn out to be all zeros (unless the kernel copies them whole: a --no-sync clone). The clone is written under a temporary name and renamed into place when
/// complete, so a failed or cancelled clone leaves nothing behind. The clone gets new identities.
/// </summary>
public static class FullClone
{
    /// <summary>Clones <paramref name="source"/> (and its parents) into a new image at <paramref name="destination"/>.</summary>
    /// <exception cref="DiskImageException">AlreadyExists, InvalidArgument, DiskFull, Cancelled, and any open or I/O error of the source.</exception>
    public static async Task<CopyStats> RunAsync(string source, string destination, CloneOptions? options = null,
        IProgress<OperationProgress>? progress = null, CancellationToken cancel = default)
    {
        options ??= new CloneOptions();
        if (options.Type == ImageType.Differencing)
            ThrowHelper.InvalidArgument("a full clone is independent; use a linked clone for a differencing child", destination);
        string dest = Path.GetFullPath(destination);
        if (File.Exists(dest) || Directory.Exists(dest))
            throw new DiskImageException(ErrorKind.AlreadyExists, "the file already exists; refusing to overwrite it", dest);
        FolderAccess.Require(dest, "create it"); // named, rather than the partial file beside it
        var driver = options.Format is ImageFormat f ? ImageFormats.Get(f) : ImageFormats.ForNewFile(dest);

        using var src = DiskImage.Open(source, options.Open with { Writable = false });
        long size = options.VirtualSize ?? src.VirtualSize;
        if (size < src.VirtualSize)
            ThrowHelper.InvalidArgument($"the clone's virtual size {size} is smaller than the source's {src.VirtualSize}", dest);
        var top = src.Top;
        var plan = ExtentPlan.Of(src);
        long dataBytes = plan.Bytes;
        DurableFiles.RequireFreeSpace(dest, options.Type == ImageType.Fixed ? size : dataBytes, "the clone");

        string temp = dest + ".dse-partial";
        DurableFiles.TryDelete(temp);
        IDiskLayer? target = null;
        IImageFile? file = null;
        try
        {
            var createOptions = new ImageCreateOptions(size, options.Type, options.BlockSize, top.LogicalSectorSize, top.PhysicalSectorSize);
            if (createOptions.BlockSize is int bs && bs <= 0)
                ThrowHelper.InvalidArgument($"block size must be positive (got {bs})", dest);
            // Never readable by more users than the source, from its creation on (see FileOwnership.CreateModeFor).
            uint mode = FileOwnership.CreateModeFor(src.Layers.Select(l => l.Path));
            // A fixed clone must really reserve its space (fallocate), which only the plain file does.
            if (options.Type == ImageType.Fixed)
            {
                var plain = ImageFile.Create(temp, mode, dest);
                // Nobody reads the clone before its final fsync either: bulk data can bypass the page cache.
                if (options.Durable) plain.UseDirectWrites();
                file = plain;
            }
            else file = TempImageFile.Create(temp, dest, direct: options.Durable, mode);
            var imageFile = file is TempImageFile staged ? staged.Inner : file as ImageFile;
            // A clone left in the page cache allocates each range just before it is written (one extent at once,
            // not page by page: cheaper, see ImageFile.UseAllocatedWrites); a durable one writes with O_DIRECT. A fixed
            // image has all its space reserved at creation already.
            if (!options.Durable && options.Type != ImageType.Fixed) imageFile?.UseAllocatedWrites();
            target = driver.Create(file, createOptions, null);
            var output = new DiskChain(new[] { target });
            long written = 0, zero = 0, shared = 0;
            // Data the file system can share (reflink) is not copied at all: the target places each block-aligned
            // range (a raw file where it is, a VHDX in a fresh block) and the source's extents are cloned there. A
            // clone left in the page cache (--no-sync) has the kernel copy the rest (copy_file_range), as cp does.
            if (target is IPlaceableLayer placeable && imageFile is { } targetFile)
            {
                plan = plan.ShareInto(targetFile, placeable, out shared, copyInKernel: !options.Durable,
                    done => progress?.Report(new OperationProgress("cloning", done, dataBytes)), cancel);
                written += shared;
            }
            await ExtentPump.RunAsync(plan.Ranges, ExtentPump.ChunkFor(target.BlockSize, pageCache: !options.Durable), plan.Read,
                (off, data, len, isZero) =>
                {
                    // A new image reads as zeros everywhere, so an all-zero piece needs no write at all.
                    if (isZero) { zero += len; return; }
                    output.Write(off, data);
                    written += len;
                },
                done => progress?.Report(new OperationProgress("cloning", shared + done, dataBytes)), cancel).ConfigureAwait(false);
            target.Flush();
            if (file is TempImageFile deferred && options.Durable) deferred.MakeDurable();
            target.Dispose();
            target = null;
            DurableFiles.Rename(temp, dest, overwrite: false, syncFolders: options.Durable);
            return new CopyStats(written, zero);
        }
        catch (Exception e)
        {
            DurableFiles.CloseAfterFailure(target ?? (IDisposable?)file);
            DurableFiles.TryDelete(temp);
            // The partial file is gone: a refusal about it (the format cannot hold this size or sector size) names the
            // clone the user asked for.
            if (e is DiskImageException d && d.Path == temp)
                throw new DiskImageException(d.Kind, d.Detail, dest, d.Structure, d.FileOffset, d);
            throw;
        }
    }
}
