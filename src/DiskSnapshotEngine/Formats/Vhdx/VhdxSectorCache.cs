using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Formats.Vhdx;

/// <summary>
/// The 4 KiB metadata sectors (BAT, sector bitmap, metadata region) a layer has touched. Clean sectors are a bounded
/// cache (dropped wholesale when full), so memory does not grow with the virtual size; dirty sectors are kept until
/// the next log commit. Callers hold the layer's lock.
/// </summary>
internal sealed class VhdxSectorCache
{
    private const int MaxClean = 1024; // 4 MiB of cached metadata
    private readonly IImageFile _file;
    private readonly Dictionary<long, byte[]> _clean = new();
    // Not a SortedDictionary: its instantiation over long keys is not precompiled and cost every open its compilation.
    private readonly Dictionary<long, byte[]> _dirty = new();

    public VhdxSectorCache(IImageFile file) => _file = file;

    public int DirtyCount => _dirty.Count;

    /// <summary>The sector at <paramref name="fileOffset"/> (a multiple of 4096), for reading only.</summary>
    public byte[] Get(long fileOffset, string structure)
    {
        if (_dirty.TryGetValue(fileOffset, out var d)) return d;
        if (_clean.TryGetValue(fileOffset, out var c)) return c;
        var sector = new byte[4096];
        _file.ReadExactly(sector, fileOffset, structure);
        if (_clean.Count >= MaxClean) _clean.Clear();
        _clean[fileOffset] = sector;
        return sector;
    }

    /// <summary>The sector, to be modified; it stays pending until <see cref="MarkClean"/>.</summary>
    public byte[] GetForWrite(long fileOffset, string structure)
    {
        if (_dirty.TryGetValue(fileOffset, out var d)) return d;
        var sector = Get(fileOffset, structure);
        _clean.Remove(fileOffset);
        _dirty[fileOffset] = sector;
        return sector;
    }

    /// <summary>The pending sectors' file offsets, in ascending order (a log entry lists them so).</summary>
    public long[] DirtyOffsets()
    {
        var offsets = new long[_dirty.Count];
        _dirty.Keys.CopyTo(offsets, 0);
        Array.Sort(offsets);
        return offsets;
    }

    /// <summary>After a commit: the pending sectors are now what the file holds.</summary>
    public void MarkClean()
    {
        foreach (var (k, v) in _dirty)
        {
            if (_clean.Count >= MaxClean) _clean.Clear();
            _clean[k] = v;
        }
        _dirty.Clear();
    }
}
