using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Tests.Infrastructure;

/// <summary>
/// A fault-injecting in-memory image file (after FASTER's SimulatedFlakyDevice). It remembers what a power loss
/// would keep: everything flushed is durable; writes issued since the last flush are pending. It can
/// <list type="bullet">
/// <item>cut an update: the write numbered <see cref="FailAtWrite"/> (0-based, counted from construction or <see cref="ResetCounters"/>) and every later operation fail, as if the process died there;</item>
/// <item>raise "no space left" instead (<see cref="DiskFullAtWrite"/>);</item>
/// <item>materialise the state after a power loss: the durable bytes plus any subset of the pending writes, applied in any order.</item>
/// </list>
/// Storage is a sparse map of 4 KiB pages, so large sparse images cost only what is written.
/// </summary>
public sealed class CrashSimulationFile : IImageFile
{
    private const int Page = 4096;
    private readonly Dictionary<long, byte[]> _durable = new();
    private readonly List<(long Offset, byte[] Data)> _pending = new();
    private long _durableLength;
    private long _length;
    private bool _crashed;

    public CrashSimulationFile(string path, byte[]? initial = null)
    {
        Path = path;
        if (initial is not null)
        {
            WritePages(_durable, initial, 0);
            _durableLength = _length = initial.Length;
        }
    }

    /// <summary>Loads a real file's bytes as the durable state.</summary>
    public static CrashSimulationFile FromFile(string path) => new(path, System.IO.File.ReadAllBytes(path));

    public string Path { get; }
    public bool CanWrite { get; set; } = true;
    public long Length => _length;

    /// <summary>Index of the write that "crashes" (it and everything after throw), or -1 for never.</summary>
    public int FailAtWrite { get; set; } = -1;

    /// <summary>Index of the write that fails with a disk-full error (the file stays usable for later calls), or -1.</summary>
    public int DiskFullAtWrite { get; set; } = -1;

    /// <summary>Writes issued so far.</summary>
    public int WriteCount { get; private set; }

    /// <summary>Flushes issued so far.</summary>
    public int FlushCount { get; private set; }

    /// <summary>True once the simulated crash happened.</summary>
    public bool Crashed => _crashed;

    /// <summary>Number of writes not yet flushed.</summary>
    public int PendingWrites => _pending.Count;

    public void ResetCounters()
    {
        WriteCount = 0;
        FlushCount = 0;
    }

    public int Read(Span<byte> buffer, long fileOffset)
    {
        ThrowIfCrashed();
        if (fileOffset >= _length) return 0;
        int n = (int)Math.Min(buffer.Length, _length - fileOffset);
        ReadPages(_durable, buffer[..n], fileOffset);
        foreach (var (off, data) in _pending) Overlay(buffer[..n], fileOffset, off, data);
        return n;
    }

    public void Write(ReadOnlySpan<byte> buffer, long fileOffset)
    {
        ThrowIfCrashed();
        if (!CanWrite) throw new DiskImageException(ErrorKind.ReadOnly, "read-only", Path);
        int index = WriteCount++;
        if (index == FailAtWrite)
        {
            _crashed = true;
            throw new DiskImageException(ErrorKind.Io, $"simulated crash at write {index}", Path);
        }
        if (index == DiskFullAtWrite)
            throw new DiskImageException(ErrorKind.DiskFull, $"simulated disk full at write {index}", Path);
        _pending.Add((fileOffset, buffer.ToArray()));
        _length = Math.Max(_length, fileOffset + buffer.Length);
    }

    public void SetLength(long length)
    {
        ThrowIfCrashed();
        // Length changes are treated as durable metadata at once (ftruncate is ordered before later writes on Linux file systems we target).
        Flush();
        _length = _durableLength = length;
        foreach (var key in _durable.Keys.Where(k => k >= length).ToList()) _durable.Remove(key);
        long lastPage = length / Page * Page;
        if (_durable.TryGetValue(lastPage, out var page)) Array.Clear(page, (int)(length - lastPage), Page - (int)(length - lastPage));
    }

    /// <summary>Called just before every flush takes effect: the moment a power loss tells whether a barrier was missing.</summary>
    public Action? BeforeFlush { get; set; }

    public void Flush()
    {
        ThrowIfCrashed();
        BeforeFlush?.Invoke();
        FlushCount++;
        foreach (var (off, data) in _pending)
        {
            WritePages(_durable, data, off);
            _durableLength = Math.Max(_durableLength, off + data.Length);
        }
        _pending.Clear();
    }

    /// <summary>
    /// What a power loss leaves: the durable state plus the pending writes chosen by <paramref name="keep"/>,
    /// applied in the order given by <paramref name="order"/> (indices into the pending list).
    /// </summary>
    public byte[] AfterPowerLoss(IReadOnlyList<int> order)
    {
        var pages = _durable.ToDictionary(kv => kv.Key, kv => (byte[])kv.Value.Clone());
        long len = _durableLength;
        foreach (int i in order)
        {
            var (off, data) = _pending[i];
            WritePages(pages, data, off);
            len = Math.Max(len, off + data.Length);
        }
        var result = new byte[len];
        ReadPages(pages, result, 0);
        return result;
    }

    /// <summary>A random power loss: each pending write kept with probability 1/2, kept ones shuffled.</summary>
    public byte[] AfterRandomPowerLoss(Random rng)
    {
        var order = Enumerable.Range(0, _pending.Count).Where(_ => rng.Next(2) == 0).OrderBy(_ => rng.Next()).ToList();
        return AfterPowerLoss(order);
    }

    /// <summary>
    /// Every state a power loss can leave now (call it from <see cref="BeforeFlush"/>): the durable bytes plus each
    /// subset of the pending writes, applied in issue order, when there are at most <paramref name="allSubsetsUpTo"/>
    /// pending writes; else <paramref name="sampledSubsets"/> seeded random subsets. Each comes with what it kept.
    /// </summary>
    public IEnumerable<(string Kept, byte[] Bytes)> PowerLossStates(int allSubsetsUpTo, int sampledSubsets)
    {
        int n = _pending.Count;
        var subsets = n <= allSubsetsUpTo
            ? Enumerable.Range(0, 1 << n).Select(mask => Enumerable.Range(0, n).Where(i => (mask & (1 << i)) != 0).ToList())
            : Enumerable.Range(0, sampledSubsets).Select(k => Enumerable.Range(0, n).Where(i => new Random(k * 31 + i).Next(2) == 0).ToList());
        foreach (var subset in subsets) yield return ($"kept [{string.Join(",", subset)}] of {n}", AfterPowerLoss(subset));
    }

    /// <summary>The bytes a reader would see now (durable plus every pending write in order).</summary>
    public byte[] CurrentContent() => AfterPowerLoss(Enumerable.Range(0, _pending.Count).ToList());

    public void Dispose() { }

    private void ThrowIfCrashed()
    {
        if (_crashed) throw new DiskImageException(ErrorKind.Io, "simulated crash: the file is gone with the process", Path);
    }

    private static void Overlay(Span<byte> dest, long destOffset, long srcOffset, byte[] src)
    {
        long s = Math.Max(destOffset, srcOffset), e = Math.Min(destOffset + dest.Length, srcOffset + src.Length);
        if (s >= e) return;
        src.AsSpan((int)(s - srcOffset), (int)(e - s)).CopyTo(dest[(int)(s - destOffset)..]);
    }

    private static void WritePages(Dictionary<long, byte[]> pages, ReadOnlySpan<byte> data, long offset)
    {
        while (data.Length > 0)
        {
            long pageStart = offset / Page * Page;
            int inPage = (int)(offset - pageStart);
            int n = Math.Min(data.Length, Page - inPage);
            if (!pages.TryGetValue(pageStart, out var page)) pages[pageStart] = page = new byte[Page];
            data[..n].CopyTo(page.AsSpan(inPage));
            data = data[n..];
            offset += n;
        }
    }

    private static void ReadPages(Dictionary<long, byte[]> pages, Span<byte> dest, long offset)
    {
        while (dest.Length > 0)
        {
            long pageStart = offset / Page * Page;
            int inPage = (int)(offset - pageStart);
            int n = Math.Min(dest.Length, Page - inPage);
            if (pages.TryGetValue(pageStart, out var page)) page.AsSpan(inPage, n).CopyTo(dest);
            else dest[..n].Clear();
            dest = dest[n..];
            offset += n;
        }
    }
}
