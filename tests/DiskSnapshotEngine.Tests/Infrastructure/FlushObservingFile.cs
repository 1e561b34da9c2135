using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Tests.Infrastructure;

/// <summary>Delegates to a <see cref="CrashSimulationFile"/> and calls back just before every flush (the moment a power loss is most revealing).</summary>
public sealed class FlushObservingFile(CrashSimulationFile inner, Action beforeFlush) : IImageFile
{
    public string Path => inner.Path;
    public bool CanWrite => inner.CanWrite;
    public long Length => inner.Length;
    public int Read(Span<byte> buffer, long fileOffset) => inner.Read(buffer, fileOffset);
    public void Write(ReadOnlySpan<byte> buffer, long fileOffset) => inner.Write(buffer, fileOffset);
    public void SetLength(long length) => inner.SetLength(length);

    public void Flush()
    {
        beforeFlush();
        inner.Flush();
    }

    public void Dispose() => inner.Dispose();

    /// <summary>
    /// Every state a power loss just before a flush can leave: all subsets of the pending writes when there are at most
    /// four, else 16 seeded random subsets, each applied in issue order.
    /// </summary>
    public static IEnumerable<(string When, byte[] Bytes)> PowerLossStates(CrashSimulationFile sim, int barrier)
    {
        int n = sim.PendingWrites;
        var subsets = n <= 4
            ? Enumerable.Range(0, 1 << n).Select(mask => Enumerable.Range(0, n).Where(i => (mask & (1 << i)) != 0).ToList())
            : Enumerable.Range(0, 16).Select(k => Enumerable.Range(0, n).Where(i => new Random(k * 31 + i).Next(2) == 0).ToList());
        foreach (var subset in subsets) yield return ($"barrier {barrier}, kept [{string.Join(",", subset)}] of {n}", sim.AfterPowerLoss(subset));
    }
}
