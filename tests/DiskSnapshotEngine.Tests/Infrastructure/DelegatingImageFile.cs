using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Tests.Infrastructure;

/// <summary>
/// An <see cref="IImageFile"/> that passes every call to another. The tests' wrappers derive from it and override
/// only the calls they watch or break (counting reads, failing at a write).
/// </summary>
public abstract class DelegatingImageFile(IImageFile inner) : IImageFile
{
    protected IImageFile Inner { get; } = inner;

    public virtual string Path => Inner.Path;
    public virtual bool CanWrite => Inner.CanWrite;
    public virtual long Length => Inner.Length;
    public virtual int Read(Span<byte> buffer, long fileOffset) => Inner.Read(buffer, fileOffset);
    public virtual void Write(ReadOnlySpan<byte> buffer, long fileOffset) => Inner.Write(buffer, fileOffset);
    public virtual void SetLength(long length) => Inner.SetLength(length);
    public virtual void Flush() => Inner.Flush();
    public virtual void Dispose() => Inner.Dispose();
}

/// <summary>Counts the bytes read through it (how much of a file an open or a lookup touches).</summary>
public sealed class ReadCountingFile(IImageFile inner, Action<int>? onRead = null) : DelegatingImageFile(inner)
{
    public long BytesRead { get; private set; }

    public override int Read(Span<byte> buffer, long fileOffset)
    {
        int n = base.Read(buffer, fileOffset);
        BytesRead += n;
        onRead?.Invoke(n);
        return n;
    }
}
