namespace DiskSnapshotEngine.IO;

/// <summary>
/// Offset-addressed access to one image file: every call names its file offset, nothing shares a position,
/// so metadata lookups and data I/O never disturb each other. Implementations: <see cref="ImageFile"/>
/// (a real file), <see cref="MemoryOverlayFile"/> (read-only log replay), and the fault-injecting wrapper in the tests.
/// </summary>
public interface IImageFile : IDisposable
{
    /// <summary>Path of the file, for error messages and for resolving relative parent paths.</summary>
    string Path { get; }

    /// <summary>True when <see cref="Write"/>, <see cref="SetLength"/> and <see cref="Flush"/> are allowed.</summary>
    bool CanWrite { get; }

    /// <summary>Current length of the file in bytes.</summary>
    long Length { get; }

    /// <summary>Reads up to <paramref name="buffer"/>.Length bytes at <paramref name="fileOffset"/>; returns fewer only at end of file.</summary>
    int Read(Span<byte> buffer, long fileOffset);

    /// <summary>Writes all of <paramref name="buffer"/> at <paramref name="fileOffset"/>, extending the file when needed.</summary>
    /// <exception cref="Errors.DiskImageException">Kind DiskFull when the file system is full, Io otherwise.</exception>
    void Write(ReadOnlySpan<byte> buffer, long fileOffset);

    /// <summary>Sets the file length (growing leaves a hole where the file system supports it).</summary>
    void SetLength(long length);

    /// <summary>Makes every write issued so far durable (fsync). Crash ordering in the drivers relies on this barrier.</summary>
    void Flush();
}
