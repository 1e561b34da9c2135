using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Formats.Qcow2;

/// <summary>
/// qcow2.txt "Compressed Clusters Descriptor": compressed clusters copied as stored (compact). Their bytes are packed,
/// each from a 512-byte boundary, into host clusters taken for them; a host cluster's refcount is the number of compressed
/// clusters whose sectors touch it, as qemu counts it. They are published by the same crash-ordered commit as data.
/// </summary>
internal sealed partial class Qcow2Layer : IStoredCompressedLayer
{
    // The host cluster being filled with compressed data, and how many of its bytes are used.
    private long _compressedHost = -1;
    private long _compressedUsed;

    public bool CanStoreCompressedFrom(IStoredCompressedLayer source) =>
        source is Qcow2Layer q && q._g.ClusterBits == _g.ClusterBits && q._header.CompressionType == _header.CompressionType;

    // A new image (a rewrite's, before anything is written into it) takes the original's compression_type, so that
    // the original's compressed clusters, zstd ones too, are copied as stored (CanStoreCompressedFrom).
    private void KeepCompressionTypeOf(Qcow2Layer original)
    {
        byte type = original._header.CompressionType;
        if (type == _header.CompressionType) return;
        EnsureWritable("keep the original's compression type");
        lock (_sync)
        {
            _header.SetCompressionType(type);
            _compression = new Qcow2Compression(File, _g, type);
            WriteHeaderCluster();
        }
    }

    public byte[]? ReadStoredCompressed(long offset)
    {
        CheckRange(offset, 1);
        long cluster = offset >> _g.ClusterBits;
        lock (_sync)
        {
            DrainIfPending(cluster, cluster);
            var e = _tables.Get(cluster);
            if (!e.IsCompressed) return null;
            var (at, length) = e.CompressedRange(_g.ClusterBits);
            if (at >= File.Length)
                ThrowHelper.Corrupt(Path, "L2 table", _tables.EntryOffset(cluster), $"compressed cluster data at {at} lies past the end of the file at {File.Length}");
            var stored = new byte[length];
            // As when decoding: the last sector of the file may be cut short; it reads as zeros.
            File.ReadOrZero(stored, at);
            return stored;
        }
    }

    public bool WriteStoredCompressed(long offset, ReadOnlySpan<byte> stored)
    {
        EnsureWritable("write a compressed cluster");
        CheckRange(offset, 1);
        if ((offset & (_g.ClusterSize - 1)) != 0)
            ThrowHelper.InvalidArgument($"a compressed cluster starts on a cluster boundary, not at {offset}", Path);
        if (stored.Length == 0 || stored.Length > _g.ClusterSize) return false;
        BeginWrite();
        long cluster = offset >> _g.ClusterBits;
        lock (_sync)
        {
            DrainPending();
            var e = _tables.Get(cluster);
            // The L2 table first, so that it is not taken from the middle of the compressed data.
            _tables.EnsureL2(cluster, () => { _allocatedSinceCommit++; return Refcounts.Allocate(); });
            long host = AllocateCompressedBytes(stored.Length);
            File.Write(stored, host);
            long sectors = (stored.Length + 511) / 512;
            int x = 62 - (_g.ClusterBits - 8);
            var now = new Qcow2L2Entry(Qcow2L2Entry.CompressedFlag | ((ulong)(sectors - 1) << x) | (ulong)host, 0);
            SetEntry(cluster, e, now);
            if (_allocatedSinceCommit >= CommitEvery || _tables.CacheNearlyFullOfDirty || Refcounts.NearlyFullOfDirty) Commit();
        }
        return true;
    }

    // Whole 512-byte sectors after the last compressed data, running on into the next host cluster when that is the
    // one allocated next (as qemu packs them); a new host cluster otherwise. Every host cluster the sectors touch
    // counts one more reference.
    private long AllocateCompressedBytes(int length)
    {
        long need = (length + 511) & ~511L;
        long current = _compressedHost >> _g.ClusterBits;
        bool open = _compressedHost >= 0 && _compressedUsed < _g.ClusterSize && Refcounts.Get(current) < Refcounts.MaxValue;
        if (open && need <= _g.ClusterSize - _compressedUsed)
        {
            Refcounts.Set(current, Refcounts.Get(current) + 1);
            long at = _compressedHost + _compressedUsed;
            _compressedUsed += need;
            return at;
        }
        long next = Refcounts.Allocate();
        _allocatedSinceCommit++;
        _g.CheckDataCluster(next, "L2 table", null);
        long start;
        if (open && next == _compressedHost + _g.ClusterSize)
        {
            Refcounts.Set(current, Refcounts.Get(current) + 1);
            start = _compressedHost + _compressedUsed;
            _compressedUsed += need - _g.ClusterSize;
        }
        else
        {
            start = next;
            _compressedUsed = need;
        }
        _compressedHost = next;
        return start;
    }
}
