using System.Buffers.Binary;
using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Formats.Qcow2;

/// <summary>
/// Refcount consistency as <c>qemu-img check</c> sees it: every reference to a host cluster is counted (header,
/// L1 tables active and of every internal snapshot, each path L1 -> L2 -> cluster, compressed data, refcount table
/// and blocks, snapshot table, bitmaps) and compared with the stored refcount. More stored than used is a leak
/// (space only); less is corruption (a write could reuse a live cluster). Each L2 table is read once, however many
/// L1 tables share it, and memory is one counter per cluster of the file.
/// </summary>
internal sealed class Qcow2Check
{
    /// <summary>Files with more clusters than this are not checked (256 MiB of counters).</summary>
    private const long MaxClusters = 64L << 20;
    private const int MaxListedPerKind = 50;

    private readonly IImageFile _file;
    private readonly Qcow2Header _h;
    private readonly Qcow2Geometry _g;
    private readonly Qcow2Tables _tables;
    private readonly Qcow2Refcounts _refcounts;
    private readonly Func<IReadOnlyList<Qcow2Snapshot>> _snapshots;
    private readonly Qcow2HeaderExtensions _ext;
    private readonly CheckReport _report = new();
    private readonly Dictionary<string, int> _listed = new();
    private uint[] _refs = Array.Empty<uint>();
    private readonly HashSet<long> _activeL2 = new();

    public Qcow2Check(IImageFile file, Qcow2Header header, Qcow2Geometry geometry, Qcow2Tables tables, Qcow2Refcounts refcounts,
        Func<IReadOnlyList<Qcow2Snapshot>> snapshots, Qcow2HeaderExtensions extensions)
    {
        _file = file;
        _h = header;
        _g = geometry;
        _tables = tables;
        _refcounts = refcounts;
        _snapshots = snapshots;
        _ext = extensions;
    }

    public CheckReport Run()
    {
        long clusters = (_file.Length + _g.ClusterSize - 1) >> _g.ClusterBits;
        if (clusters > MaxClusters)
        {
            _report.Add(CheckSeverity.Warning, _g.Path, "refcounts", null, $"the file has {clusters} clusters, more than the {MaxClusters} this check counts; not checked");
            return _report;
        }
        if ((_h.IncompatibleFeatures & Qcow2Header.CorruptBit) != 0)
            _report.Add(CheckSeverity.Error, _g.Path, "header", 72, "the corrupt bit is set");
        if ((_h.IncompatibleFeatures & Qcow2Header.DirtyBit) != 0)
            _report.Add(CheckSeverity.Warning, _g.Path, "header", 72, "the dirty bit is set: refcounts may be stale until repaired ('qemu-img check -r all')");
        _refs = new uint[clusters];
        try
        {
            CountReferences();
            Compare();
        }
        catch (DiskImageException e)
        {
            _report.Add(CheckSeverity.Error, _g.Path, e.Structure ?? "image", e.FileOffset, e.Detail);
        }
        return _report;
    }

    private void CountReferences()
    {
        Reference(0, _g.ClusterSize, 1, "header", 0);
        var visits = new Dictionary<long, uint>();
        Reference((long)_h.L1TableOffset, _h.L1Size * 8L, 1, "L1 table", 40);
        WalkL1(_tables.L1, (long)_h.L1TableOffset, visits, active: true);
        foreach (var s in _snapshots())
        {
            long bytes = s.L1Size * 8L;
            if ((s.L1TableOffset & (_g.ClusterSize - 1)) != 0 || bytes > Qcow2Tables.MaxL1Bytes || s.L1TableOffset + bytes > _file.Length || s.L1TableOffset <= 0)
            {
                Problem(CheckSeverity.Error, "snapshot table", s.EntryOffset, $"snapshot '{s.Name}': its L1 table at {s.L1TableOffset} (+{bytes}) is not a valid area of the file");
                continue;
            }
            Reference(s.L1TableOffset, bytes, 1, "snapshot L1 table", s.EntryOffset);
            var l1 = new ulong[s.L1Size];
            Qcow2Tables.ReadWords(_file, s.L1TableOffset, l1, "snapshot L1 table");
            WalkL1(l1, s.L1TableOffset, visits, active: false);
        }
        if (_h.NbSnapshots > 0)
        {
            var all = _snapshots();
            long end = all.Count == 0 ? (long)_h.SnapshotsOffset : all[^1].EntryEnd;
            Reference((long)_h.SnapshotsOffset, end - (long)_h.SnapshotsOffset, 1, "snapshot table", 64);
        }
        foreach (var (l2, count) in visits.OrderBy(kv => kv.Key)) WalkL2(l2, count);
        Reference(_refcounts.TableOffset, _refcounts.TableClusters * _g.ClusterSize, 1, "refcount table", 48);
        for (long i = 0; i < _refcounts.TableLength; i++)
        {
            long block = (long)(_refcounts.TableEntry(i) & Qcow2L2Entry.OffsetMask);
            if (block == 0) continue;
            if ((block & (_g.ClusterSize - 1)) != 0)
                Problem(CheckSeverity.Error, "refcount table", _refcounts.TableOffset + i * 8, $"refcount block {i} at {block} is not cluster-aligned");
            else Reference(block, _g.ClusterSize, 1, "refcount block", _refcounts.TableOffset + i * 8);
        }
        if (_ext.Find(Qcow2HeaderExtensions.Bitmaps) is { } bitmaps && (_h.AutoclearFeatures & Qcow2Header.BitmapsBit) != 0)
            CountBitmaps(bitmaps.Data);
    }

    private void WalkL1(IReadOnlyList<ulong> l1, long l1Offset, Dictionary<long, uint> visits, bool active)
    {
        for (int i = 0; i < l1.Count; i++)
        {
            long l2 = (long)(l1[i] & Qcow2L2Entry.OffsetMask);
            if (l2 == 0) continue;
            long at = l1Offset + i * 8L;
            if ((l2 & (_g.ClusterSize - 1)) != 0)
            {
                Problem(CheckSeverity.Error, "L1 table", at, $"entry {i}: L2 table offset {l2} is not cluster-aligned");
                continue;
            }
            if (l2 > _file.Length - _g.ClusterSize)
            {
                Problem(CheckSeverity.Error, "L1 table", at, $"entry {i}: L2 table at {l2} lies past the end of the file");
                continue;
            }
            visits[l2] = visits.GetValueOrDefault(l2) + 1;
            if (!active) continue;
            _activeL2.Add(l2);
            CheckCopied(l1[i], l2, "L1 table", at);
        }
    }

    private void WalkL2(long l2, uint count)
    {
        Reference(l2, _g.ClusterSize, count, "L2 table", null);
        var words = new ulong[_g.ClusterSize / 8];
        Qcow2Tables.ReadWords(_file, l2, words, "L2 table");
        // Only tables of the active L1 carry exact COPIED flags (qcow2.txt "Snapshots").
        bool active = _activeL2.Contains(l2);
        for (int i = 0; i < _g.L2Entries; i++)
        {
            var e = _g.ExtendedL2 ? new Qcow2L2Entry(words[2 * i], words[2 * i + 1]) : new Qcow2L2Entry(words[i], 0);
            long at = l2 + (long)i * _g.EntryBytes;
            if (e.IsCompressed)
            {
                var (offset, length) = e.CompressedRange(_g.ClusterBits);
                long start = offset & ~511L;
                Reference(start, offset + length - start, count, "compressed cluster", at);
                continue;
            }
            long host = e.HostOffset;
            if (_g.ExtendedL2)
            {
                ulong both = e.Bitmap & (e.Bitmap >> 32) & 0xFFFFFFFF;
                if (both != 0) Problem(CheckSeverity.Error, "L2 table", at, $"entry {i}: subclusters both allocated and zero (bitmap 0x{e.Bitmap:x16})");
                if (host == 0 && (e.Bitmap & 0xFFFFFFFF) != 0) Problem(CheckSeverity.Error, "L2 table", at, $"entry {i}: allocated subclusters without a host cluster");
            }
            if (host == 0) continue;
            if ((host & (_g.ClusterSize - 1)) != 0)
            {
                Problem(CheckSeverity.Error, "L2 table", at, $"entry {i}: data cluster offset {host} is not cluster-aligned");
                continue;
            }
            Reference(host, _g.ClusterSize, count, "data cluster", at);
            if (active) CheckCopied(e.Entry, host, "L2 table", at);
        }
    }

    // qcow2.txt: bit 63 of an active L1 or L2 entry is set exactly when the cluster's refcount is 1.
    private void CheckCopied(ulong entry, long host, string structure, long at)
    {
        ulong refcount = _refcounts.Get(host >> _g.ClusterBits);
        bool copied = (entry & Qcow2L2Entry.CopiedFlag) != 0;
        if (copied != (refcount == 1))
            Problem(CheckSeverity.Error, structure, at, $"COPIED flag {(copied ? "set" : "clear")} for the cluster at {host} whose refcount is {refcount}");
    }

    // qcow2.txt "Bitmaps": the directory, each bitmap table and each bitmap data cluster are referenced once.
    private void CountBitmaps(byte[] ext)
    {
        if (ext.Length < 24) { Problem(CheckSeverity.Error, "bitmaps extension", null, $"the extension has {ext.Length} bytes, fewer than 24"); return; }
        long dirSize = (long)Math.Min(BinaryPrimitives.ReadUInt64BigEndian(ext.AsSpan(8)), 64UL << 20);
        long dirOffset = (long)Math.Min(BinaryPrimitives.ReadUInt64BigEndian(ext.AsSpan(16)), long.MaxValue);
        if (dirOffset <= 0 || dirOffset > _file.Length - dirSize) { Problem(CheckSeverity.Error, "bitmaps extension", null, $"bitmap directory at {dirOffset} (+{dirSize}) is outside the file"); return; }
        Reference(dirOffset, dirSize, 1, "bitmap directory", null);
        var dir = new byte[dirSize];
        _file.ReadExactly(dir, dirOffset, "bitmap directory");
        for (int at = 0; at + 24 <= dir.Length;)
        {
            long tableOffset = (long)Math.Min(BinaryPrimitives.ReadUInt64BigEndian(dir.AsSpan(at)), long.MaxValue);
            uint tableSize = BinaryPrimitives.ReadUInt32BigEndian(dir.AsSpan(at + 8));
            int nameSize = BinaryPrimitives.ReadUInt16BigEndian(dir.AsSpan(at + 18));
            uint extra = BinaryPrimitives.ReadUInt32BigEndian(dir.AsSpan(at + 20));
            if (tableOffset <= 0 || tableOffset > _file.Length - tableSize * 8L) { Problem(CheckSeverity.Error, "bitmap directory", dirOffset + at, $"bitmap table at {tableOffset} is outside the file"); break; }
            Reference(tableOffset, tableSize * 8L, 1, "bitmap table", dirOffset + at);
            var table = new ulong[tableSize];
            Qcow2Tables.ReadWords(_file, tableOffset, table, "bitmap table");
            foreach (ulong t in table)
                if ((t & Qcow2L2Entry.OffsetMask) is var data and > 0) Reference((long)data, _g.ClusterSize, 1, "bitmap data", tableOffset);
            at += (int)((24 + extra + nameSize + 7) & ~7L);
        }
    }

    private void Reference(long offset, long length, uint count, string what, long? at)
    {
        if (length <= 0) return;
        long first = offset >> _g.ClusterBits, last = (offset + length - 1) >> _g.ClusterBits;
        for (long c = first; c <= last; c++)
        {
            if (c < 0 || c >= _refs.Length)
            {
                Problem(CheckSeverity.Error, what, at, $"references host cluster {c} (offset {c << _g.ClusterBits}), past the end of the file at {_file.Length}");
                return;
            }
            _refs[c] = (uint)Math.Min(uint.MaxValue, (ulong)_refs[c] + count);
        }
    }

    private void Compare()
    {
        for (long c = 0; c < _refs.Length; c++)
        {
            ulong stored = _refcounts.Get(c);
            ulong used = _refs[c];
            if (stored == used) continue;
            long offset = c << _g.ClusterBits;
            if (stored > used)
            {
                Problem(CheckSeverity.Leak, "refcount block", null, used == 0
                    ? $"leaked cluster {c} at {offset}: refcount {stored} but nothing uses it"
                    : $"cluster {c} at {offset}: refcount {stored} but {used} reference(s)");
            }
            else
            {
                Problem(CheckSeverity.Error, "refcount block", null, $"cluster {c} at {offset}: refcount {stored} but {used} reference(s): a write could reuse it");
            }
        }
        foreach (var (kind, n) in _listed.Where(kv => kv.Value > MaxListedPerKind && kv.Key != nameof(CheckSeverity.Warning)))
            _report.Add(kind == nameof(CheckSeverity.Leak) ? CheckSeverity.Leak : CheckSeverity.Error, _g.Path, "refcounts", null,
                $"{n - MaxListedPerKind} more {kind.ToLowerInvariant()} finding(s) not listed");
    }

    private void Problem(CheckSeverity severity, string structure, long? at, string message)
    {
        string key = severity.ToString();
        int n = _listed[key] = _listed.GetValueOrDefault(key) + 1;
        if (n <= MaxListedPerKind) _report.Add(severity, _g.Path, structure, at, message);
    }
}
