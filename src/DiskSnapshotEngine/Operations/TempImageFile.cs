using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Operations;

/// <summary>
/// The file behind an image that is being written under a temporary name (full clone, compact) and becomes visible
/// only through a final rename. Drivers fsync at every allocation to order their metadata against a crash; for a
/// file nobody can see until it is complete that ordering buys nothing (a crash leaves a temporary file that the next
/// run deletes), so <see cref="Flush"/> is deferred: one real fsync in <see cref="MakeDurable"/> before the rename.
/// </summary>
internal sealed class TempImageFile : IImageFile
{
    private readonly ImageFile _inner;

    private TempImageFile(ImageFile inner) => _inner = inner;

    /// <summary>
    /// Creates the temporary file (never overwrites) with <paramref name="mode"/> less the umask beside
    /// <paramref name="named"/>, the file the user gave (which refusals name); <paramref name="direct"/> sends bulk data straight to the disk.
    /// </summary>
    public static TempImageFile Create(string path, string named, bool direct = true, uint mode = FileOwnership.NewFileMode)
    {
        var file = ImageFile.Create(path, mode, named);
        // Nobody reads the file before the final fsync, so bulk data can bypass the page cache (see UseDirectWrites).
        // Without a final fsync (--no-sync) the page cache is the faster path, as for cp.
        if (direct) file.UseDirectWrites();
        return new TempImageFile(file);
    }

    /// <summary>The real file (shared extents need its handle).</summary>
    public ImageFile Inner => _inner;

    public string Path => _inner.Path;
    public bool CanWrite => _inner.CanWrite;
    public long Length => _inner.Length;
    public int Read(Span<byte> buffer, long fileOffset) => _inner.Read(buffer, fileOffset);
    public void Write(ReadOnlySpan<byte> buffer, long fileOffset) => _inner.Write(buffer, fileOffset);
    public void SetLength(long length) => _inner.SetLength(length);

    /// <summary>Deferred (see the type's remarks).</summary>
    public void Flush() { }

    /// <summary>The one real fsync, before the file is renamed into place.</summary>
    public void MakeDurable() => _inner.Flush();

    public void Dispose() => _inner.Dispose();
}
