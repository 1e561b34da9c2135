using DiskSnapshotEngine.Errors;

namespace DiskSnapshotEngine.IO;

/// <summary>
/// A read-only view of a file with some byte ranges replaced in memory. A read-only open of a VHDX with a dirty
/// log replays the log into this overlay, so readers see the replayed metadata while the file stays untouched.
/// </summary>
internal sealed class MemoryOverlayFile : IImageFile
{
    private readonly IImageFile _inner;
    // Patches keyed by file offset; replay writes whole 4 KiB sectors, so a small sorted list suffices.
    private readonly SortedList<long, byte[]> _patches = new();
    private long _length;

    public MemoryOverlayFile(IImageFile inner)
    {
        _inner = inner;
        _length = inner.Length;
    }

    public string Path => _inner.Path;
    public bool CanWrite => false;
    public long Length => _length;

    /// <summary>True when at least one patch was applied.</summary>
    public bool HasPatches => _patches.Count > 0;

    /// <summary>Records bytes that reads will see in place of the file's own (the overlay's only way to change).</summary>
    public void Patch(ReadOnlySpan<byte> data, long fileOffset)
    {
        // Patches never overlap: a new one absorbs any it touches, its own bytes on top.
        long end = fileOffset + data.Length;
        var overlapping = _patches.Where(p => p.Key < end && p.Key + p.Value.Length > fileOffset).ToList();
        long newStart = fileOffset, newEnd = end;
        foreach (var p in overlapping)
        {
            newStart = Math.Min(newStart, p.Key);
            newEnd = Math.Max(newEnd, p.Key + p.Value.Length);
        }
        var combined = new byte[newEnd - newStart];
        foreach (var p in overlapping) p.Value.CopyTo(combined, p.Key - newStart);
        data.CopyTo(combined.AsSpan((int)(fileOffset - newStart)));
        foreach (var p in overlapping) _patches.Remove(p.Key);
        _patches.Add(newStart, combined);
        if (newEnd > _length) _length = newEnd;
    }

    /// <summary>Changes the length readers see (log replay may carry a file size).</summary>
    public void PatchLength(long length) => _length = length;

    public int Read(Span<byte> buffer, long fileOffset)
    {
        if (fileOffset >= _length) return 0;
        int count = (int)Math.Min(buffer.Length, _length - fileOffset);
        var dest = buffer[..count];
        _inner.ReadOrZero(dest, fileOffset);
        long end = fileOffset + count;
        foreach (var (key, value) in _patches)
        {
            if (key >= end) break;
            long pEnd = key + value.Length;
            if (pEnd <= fileOffset) continue;
            long s = Math.Max(key, fileOffset), e = Math.Min(pEnd, end);
            value.AsSpan((int)(s - key), (int)(e - s)).CopyTo(dest[(int)(s - fileOffset)..]);
        }
        return count;
    }

    public void Write(ReadOnlySpan<byte> buffer, long fileOffset) => ThrowHelper.ReadOnly(Path, "write");
    public void SetLength(long length) => ThrowHelper.ReadOnly(Path, "resize");
    public void Flush() { }
    public void Dispose() => _inner.Dispose();
}
