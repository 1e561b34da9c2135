using System.Buffers.Binary;
using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using static DiskSnapshotEngine.Formats.Vhdx.VhdxConstants;

namespace DiskSnapshotEngine.Formats.Vhdx;

public sealed partial class VhdxLayer : IResizable
{
    /// <summary>
    /// MS-VHDX 2.6.2.2 Virtual Disk Size, changed in place when the BAT region (allocated in whole MiB, so usually
    /// with room) holds the entries the new size needs (2.5). The tail of the old last block is zeroed in its payload
    /// (it becomes visible), the BAT entries between the old and the new end are made PAYLOAD_BLOCK_NOT_PRESENT, then the
    /// new size is written through the log: a crash keeps the old size or the new one. Base images only; the layer
    /// must be reopened afterwards.
    /// </summary>
    public bool TryResizeInPlace(long newSize)
    {
        if (!IsWritable) ThrowHelper.ReadOnly(Path, "resize");
        long bs = _parameters.BlockSize;
        long blocks = CeilDiv(newSize, bs);
        long entries = BatEntriesFor(blocks, _chunkRatio, hasParent: false);
        if (IsDifferencing || _parameters.LeaveBlockAllocated || newSize % _logicalSectorSize != 0 || entries * 8 > _batRegion.Length)
            return false;
        int sizeItem = _metadataTable.Entries.FindIndex(e => e.ItemId == VirtualDiskSizeItem && !e.IsUser);
        if (sizeItem < 0) return false;
        lock (_sync)
        {
            BeginChange(content: false);
            if (newSize > _virtualSize && _virtualSize % bs != 0)
            {
                long last = _virtualSize / bs;
                var e = PayloadEntry(last);
                if (e.State == VhdxBatEntry.FullyPresent)
                {
                    long tail = _virtualSize % bs;
                    ZeroFill(e.FileOffset + tail, Math.Min(bs, newSize - last * bs) - tail);
                    _payloadUnflushed = true;
                }
            }
            long keep = BatEntriesFor(Math.Min(blocks, _payloadBlocks), _chunkRatio, hasParent: false);
            long end = Math.Max(entries, _batEntryCount);
            for (long i = keep; i < end; i++)
            {
                if (ReadBatEntry(i).Raw == 0) continue;
                WriteBatEntry(i, default);
                if (_sectors.DirtyCount >= CommitThreshold) CommitPending();
            }
            Span<byte> raw = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(raw, (ulong)newSize);
            PatchMetadata(_metadataTable.Entries[sizeItem].Offset, raw);
            CommitPending();
            _file.Flush();
        }
        return true;
    }
}
