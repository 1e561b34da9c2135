using System.Buffers.Binary;
using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;
using static DiskSnapshotEngine.Formats.Vhdx.VhdxConstants;

namespace DiskSnapshotEngine.Formats.Vhdx;

// resize in place: the Virtual Disk Size item and the BAT entries between the old and the new end, one log entry.
internal sealed partial class VhdxLayer : IResizable
{
    /// <summary>
    /// MS-VHDX 2.6.2.2 Virtual Disk Size, changed in place. When the BAT region (allocated in whole MiB, so usually with
    /// room) is too small for the entries the new size needs (2.5), the BAT moves to a larger region at the end of the
    /// file (see <see cref="StageRelocatedBat"/>), in the same log entry as the size. Growing: the tail of the old last block is zeroed in its
    /// payload (it becomes visible; that space was never part of the disk). Both ways, the BAT entries between the old
    /// and the new end become PAYLOAD_BLOCK_NOT_PRESENT / SB_BLOCK_NOT_PRESENT (an entry past the old end may hold
    /// anything; those before it hold no data), then the new size goes through the log: a crash keeps the old size or
    /// the new one. A differencing file (Hyper-V resizes those too) keeps the sector bitmap entries of the chunks it
    /// still covers, and the tail of a partially present last block is zeroed like a full one's; the caller checked
    /// that no parent data lies where a grown child would show it. The layer must be reopened afterwards.
    /// </summary>
    public bool TryResizeInPlace(long newSize)
    {
        if (!IsWritable) ThrowHelper.ReadOnly(Path, "resize");
        long bs = _parameters.BlockSize;
        long blocks = VhdxBat.CeilDiv(newSize, bs);
        long entries = VhdxBat.EntriesFor(blocks, _bat.ChunkRatio, IsDifferencing);
        if (_parameters.LeaveBlockAllocated || newSize <= 0 || newSize > MaxVirtualSize
            || newSize % _logicalSectorSize != 0)
            return false;
        bool relocate = entries * 8 > _bat.Region.Length;
        // Every refusal comes before the first write (BeginChange rewrites the headers): a refused resize leaves the file as it was.
        long relocatedLength = SpanHelpers.AlignUp(entries * 8, MiB);
        if (relocate && relocatedLength > uint.MaxValue)
            ThrowHelper.InvalidArgument($"the BAT for this size needs {relocatedLength} bytes, more than a region holds (4 GiB); use a larger block size", Path);
        lock (_sync)
        {
            int sizeItem = _metadata.IndexOf(VirtualDiskSizeItem, "Virtual Disk Size");
            VerifyTable();
            BeginChange(content: false);
            // The copy reads the old BAT from the file: BAT changes still in the sector cache are committed first, or the
            // new BAT would miss them (and the log entry below would write them into the abandoned one).
            if (relocate) CommitPending();
            if (newSize > _virtualSize && _virtualSize % bs != 0)
            {
                long last = _virtualSize / bs;
                var e = _bat.Payload(last);
                if (e.State is VhdxBatEntry.FullyPresent or VhdxBatEntry.PartiallyPresent)
                {
                    long tail = _virtualSize % bs;
                    _file.WriteZeros(e.FileOffset + tail, Math.Min(bs, newSize - last * bs) - tail);
                    _payloadUnflushed = true;
                }
            }
            long kept = Math.Min(blocks, _bat.PayloadBlocks);
            // A differencing BAT ends on whole chunks: past the last kept block, payload entries are cleared but the
            // sector bitmap entries of the chunks still covered stay (they describe the kept blocks too).
            long keep = IsDifferencing ? _bat.PayloadIndex(kept) : VhdxBat.EntriesFor(kept, _bat.ChunkRatio, hasParent: false);
            long keptChunks = VhdxBat.CeilDiv(kept, _bat.ChunkRatio);
            long end = Math.Max(entries, _bat.EntryCount);
            // Shrinking, the new size is logged first: the entries cleared below then lie past the disk's end whatever a
            // crash or an early commit cuts (a child's ZERO block turned NOT_PRESENT under the old size shows its parent).
            bool shrink = newSize < _virtualSize;
            bool Cleared(long i) => i >= keep && !(IsDifferencing && i % (_bat.ChunkRatio + 1) == _bat.ChunkRatio && i / (_bat.ChunkRatio + 1) < keptChunks);
            if (relocate)
            {
                // Only growth needs more entries: the new region, the region tables and the size are one log entry.
                StageRelocatedBat(relocatedLength, Cleared);
                LogVirtualSize(sizeItem, newSize);
                _file.Flush();
                return true;
            }
            if (shrink) LogVirtualSize(sizeItem, newSize);
            for (long i = keep; i < end; i++)
            {
                if (!Cleared(i) || _bat.Read(i).Raw == 0) continue;
                _bat.Write(i, default);
                // An early commit is safe: these entries lie past the end the disk has now, or hold no data (checked by the caller).
                if (_sectors.DirtyCount >= CommitThresholdNow) CommitPending();
            }
            if (!shrink) LogVirtualSize(sizeItem, newSize);
            else CommitPending();
            _file.Flush();
        }
        return true;
    }

    private void LogVirtualSize(int sizeItem, long newSize)
    {
        Span<byte> raw = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(raw, (ulong)newSize);
        _metadata.Overwrite(sizeItem, raw);
        CommitPending();
    }

    /// <summary>
    /// MS-VHDX 2.2.3.2: a region lies anywhere 1 MiB aligned that no other structure uses. The BAT is copied into a new
    /// region past the end of the file (written directly: nothing references that space yet), the entries
    /// <paramref name="cleared"/> names left empty and those past the old BAT zero; then the region table sectors that
    /// change, both copies, are staged for the next log commit (2.3: replayed before the region table is read), so a
    /// crash leaves the old table or the new one whole. The old BAT region is left unused (check lists it as a leak;
    /// compact reclaims it); no payload block moves.
    /// </summary>
    private void StageRelocatedBat(long length, Func<long, bool> cleared)
    {
        var old = _bat.Region;
        long fileLength = _file.Length, allocationEnd = _allocationEnd;
        long offset = Allocate(length);
        try
        {
            var chunk = new byte[MiB];
            long copy = _bat.EntryCount * 8;
            for (long pos = 0; pos < copy; pos += chunk.Length)
            {
                int n = (int)Math.Min(chunk.Length, copy - pos);
                _file.ReadExactly(chunk.AsSpan(0, n), old.FileOffset + pos, "BAT");
                for (int b = 0; b < n; b += 8)
                    if (cleared((pos + b) / 8)) chunk.AsSpan(b, 8).Clear();
                _file.Write(chunk.AsSpan(0, n), offset + pos);
            }
        }
        catch (DiskImageException)
        {
            // Nothing references the new region yet (the log entry that would is not written): a full disk or an I/O
            // error here gives the space back, so the file keeps its old length and content (only the headers'
            // FileWriteGuid and sequence number, rewritten by BeginChange, differ).
            _file.SetLength(fileLength);
            _allocationEnd = allocationEnd;
            throw;
        }
        _payloadUnflushed = true;
        var entriesNow = _regions.Entries.Select(r => r.Guid == VhdxConstants.BatRegion ? r with { FileOffset = offset, Length = (uint)length } : r).ToArray();
        var table = new byte[RegionTableSize];
        new VhdxRegionTable(entriesNow).Write(table);
        foreach (long copyAt in new[] { RegionTable1Offset, RegionTable2Offset })
            for (int s = 0; s < RegionTableSize; s += 4096)
            {
                var sector = table.AsSpan(s, 4096);
                if (!sector.SequenceEqual(_sectors.Get(copyAt + s, "region table"))) sector.CopyTo(_sectors.GetForWrite(copyAt + s, "region table"));
            }
    }
}
