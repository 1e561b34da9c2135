using System.Buffers.Binary;
using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Formats.Qcow2;

// resize in place: growth within the clusters the active L1 table already occupies, one header write.
internal sealed partial class Qcow2Layer : IResizable
{
    /// <summary>
    /// Grows the disk in place when the L1 table's clusters already hold the entries the new size needs (one 64 KiB
    /// cluster of L1 maps 4 TiB with 64 KiB clusters, so nearly always): the new L1 entries and the tail of the old
    /// last cluster (visible once the disk is larger) are zeroed and flushed first, then size and l1_size (qcow2.txt
    /// header bytes 24-39, one write inside the first sector) change together. A crash keeps the old size or the new
    /// one. Anything else returns false, changing nothing, and the caller rewrites the image: a shrink, a dirty or
    /// lazy-refcount image, internal snapshots or bitmaps (their own sizes), a compressed or extended-L2 last cluster.
    /// An overlay grows the same way: its new clusters are unallocated and read through the backing file, which
    /// reads zeros past its own end (the caller checked that it holds no data between the old and the new end). The layer must be reopened afterwards.
    /// </summary>
    public bool TryResizeInPlace(long newSize)
    {
        EnsureWritable("resize");
        long oldSize = _g.VirtualSize, cs = _g.ClusterSize;
        if (newSize <= oldSize || newSize % 512 != 0 || newSize > Qcow2Header.MaxVirtualSize) return false;
        if ((_header.IncompatibleFeatures & Qcow2Header.DirtyBit) != 0 || _header.NbSnapshots > 0 || RewriteWouldLose is not null) return false;
        long l1Offset = (long)_header.L1TableOffset;
        long needed = ((newSize - 1) >> _g.ClusterBits) / _g.L2Entries + 1;
        long room = SpanHelpers.AlignUp(_header.L1Size * 8L, cs) / 8;
        if (l1Offset % cs != 0 || needed > room || needed * 8 > Qcow2Tables.MaxL1Bytes) return false;
        lock (_sync)
        {
            Commit();
            long tail = oldSize % cs;
            if (tail != 0)
            {
                long last = oldSize >> _g.ClusterBits;
                if (_tables.HasL2(last))
                {
                    var e = _tables.Get(last);
                    if (e.IsCompressed || _g.ExtendedL2) return false;
                    // Bytes past the old end of an allocated cluster were never part of the disk: zeros before they show.
                    if (e.HostOffset != 0 && !e.HasZeroFlag)
                        File.WriteZeros(e.HostOffset + tail, Math.Min(cs, newSize - (last << _g.ClusterBits)) - tail);
                }
            }
            uint newL1Size = (uint)Math.Max(needed, _header.L1Size);
            if (newL1Size > _header.L1Size)
                File.WriteZeros(l1Offset + _header.L1Size * 8L, (newL1Size - _header.L1Size) * 8L);
            File.Flush();
            // size (u64 at 24), crypt_method (u32 at 32, unchanged), l1_size (u32 at 36): one write.
            Span<byte> fields = stackalloc byte[16];
            _header.Raw.Slice(24, 16).CopyTo(fields);
            BinaryPrimitives.WriteUInt64BigEndian(fields, (ulong)newSize);
            BinaryPrimitives.WriteUInt32BigEndian(fields[12..], newL1Size);
            File.Write(fields, 24);
            File.Flush();
        }
        return true;
    }
}
