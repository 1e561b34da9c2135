using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;
using static DiskSnapshotEngine.Formats.Vhdx.VhdxConstants;

namespace DiskSnapshotEngine.Formats.Vhdx;

// The write path of a VHDX layer: copy-on-write spans, in-place writes, allocation of payload and sector bitmap
// blocks (always past the end of the file), ZERO blocks. BAT and bitmap changes stay pending until a log commit.
internal sealed partial class VhdxLayer
{
    public (long Offset, long Length) GetWriteSpan(long offset, long length)
    {
        if (offset < 0 || length < 0 || offset > _virtualSize - length) ThrowHelper.OutOfBounds(Path, offset, length, _virtualSize);
        if (!IsDifferencing || length == 0) return (offset, length);
        lock (_sync)
        {
            long ls = _logicalSectorSize;
            long start = offset, end = offset + length;
            // Only the sector bitmap's granularity matters: a sector that becomes present must be written whole,
            // unless this layer already holds it (or the block reads zeros/is fully present, so fresh space is right).
            if (start % ls != 0 && NeedsWholeSector(start)) start = SpanHelpers.AlignDown(start, ls);
            if (end % ls != 0 && NeedsWholeSector(end - 1)) end = Math.Min(_virtualSize, SpanHelpers.AlignUp(end, ls));
            return (start, end - start);
        }
    }

    private bool NeedsWholeSector(long pos)
    {
        var e = _bat.Payload(pos / _parameters.BlockSize);
        return e.State switch
        {
            VhdxBatEntry.NotPresent => true,
            VhdxBatEntry.PartiallyPresent => !_bitmap.IsPresent(pos / _logicalSectorSize),
            _ => false,
        };
    }

    public void Write(long offset, ReadOnlySpan<byte> data)
    {
        if (!IsWritable) ThrowHelper.ReadOnly(Path, "write");
        if (offset < 0 || offset > _virtualSize - data.Length) ThrowHelper.OutOfBounds(Path, offset, data.Length, _virtualSize);
        lock (_sync)
        {
            foreach (var p in BlockPieces.Of(offset, data.Length, _parameters.BlockSize))
            {
                WriteInBlock(p.Offset, data.Slice(p.Start, p.Length));
                // Bounded pending metadata: each log entry stays far below the smallest (1 MiB) log.
                if (_sectors.DirtyCount >= CommitThreshold) CommitPending();
            }
        }
    }

    private void WriteInBlock(long offset, ReadOnlySpan<byte> data)
    {
        long bs = _parameters.BlockSize;
        long block = offset / bs;
        long blockStart = block * bs;
        long inner = offset - blockStart;
        var e = _bat.Payload(block);
        bool wholeBlock = inner == 0 && data.Length == _bat.BlockExtent(block);
        switch (e.State)
        {
            case VhdxBatEntry.FullyPresent:
                BeginChange(content: true);
                _file.Write(data, e.FileOffset + inner);
                return;
            case VhdxBatEntry.PartiallyPresent:
                CheckSectorAligned(offset, data.Length);
                BeginChange(content: true);
                _file.Write(data, e.FileOffset + inner);
                _bitmap.Set(offset, data.Length);
                return;
        }

        bool readsZero = e.State != VhdxBatEntry.NotPresent || !IsDifferencing;
        if (SpanHelpers.IsAllZero(data))
        {
            if (wholeBlock)
            {
                // A whole block of zeros is recorded as ZERO without allocating (and hides the parent in a differencing file).
                if (e.State == VhdxBatEntry.Zero) return;
                BeginChange(content: true);
                _bat.Write(_bat.PayloadIndex(block), VhdxBatEntry.Make(VhdxBatEntry.Zero, 0));
                return;
            }
            if (readsZero) return; // part of a block that already reads as zeros: nothing to record, nothing to allocate
        }

        if (!readsZero && !wholeBlock) CheckSectorAligned(offset, data.Length);
        long fileOffset = AllocatePayload();
        // The data is in the file before the BAT entry that maps it changes, even in memory: a failed write maps nothing.
        _file.Write(data, fileOffset + inner);
        if (readsZero || wholeBlock)
        {
            // Fresh space reads as zeros, which is what the rest of a ZERO/UNMAPPED/UNDEFINED block (or of a base image's block) shows.
            _bat.Write(_bat.PayloadIndex(block), VhdxBatEntry.Make(VhdxBatEntry.FullyPresent, fileOffset));
        }
        else
        {
            _bitmap.Ensure(block * bs / _logicalSectorSize / SectorsPerBitmapBlock);
            _bitmap.ClearBlock(block);
            _bat.Write(_bat.PayloadIndex(block), VhdxBatEntry.Make(VhdxBatEntry.PartiallyPresent, fileOffset));
            _bitmap.Set(offset, data.Length);
        }
    }

    // A fresh payload block: space beyond every mapped block, which becomes visible only when the BAT entry is committed
    // through the log after this data is flushed, so a crash leaves the old content and a leaked block.
    private long AllocatePayload()
    {
        BeginChange(content: true);
        long fileOffset = Allocate(_parameters.BlockSize);
        _payloadUnflushed = true;
        return fileOffset;
    }

    bool IPlaceableLayer.TryPlace(long offset, long length, out long fileOffset, out long placed)
    {
        if (!IsWritable) ThrowHelper.ReadOnly(Path, "write");
        if (offset < 0 || length <= 0 || offset > _virtualSize - length) ThrowHelper.OutOfBounds(Path, offset, length, _virtualSize);
        (fileOffset, placed) = (-1, 0);
        lock (_sync)
        {
            // Ranges placed before are filled by now (the caller's contract): a commit here maps only written data.
            if (_sectors.DirtyCount >= CommitThreshold) CommitPending();
            long bs = _parameters.BlockSize;
            long block = offset / bs;
            long inner = offset - block * bs;
            long n = Math.Min(length, _bat.BlockExtent(block) - inner);
            var e = _bat.Payload(block);
            bool wholeBlock = inner == 0 && n == _bat.BlockExtent(block);
            switch (e.State)
            {
                case VhdxBatEntry.FullyPresent:
                    BeginChange(content: true);
                    fileOffset = e.FileOffset + inner;
                    break;
                case VhdxBatEntry.PartiallyPresent:
                    return false;
                case VhdxBatEntry.NotPresent when IsDifferencing && !wholeBlock:
                    return false; // the rest of the block must keep showing the parent: a sector bitmap, so a real write
                default:
                    long payload = AllocatePayload();
                    _bat.Write(_bat.PayloadIndex(block), VhdxBatEntry.Make(VhdxBatEntry.FullyPresent, payload));
                    fileOffset = payload + inner;
                    break;
            }
            placed = n;
            return true;
        }
    }

    private void CheckSectorAligned(long offset, long length)
    {
        long ls = _logicalSectorSize;
        long end = offset + length;
        if ((offset % ls != 0 && !SectorPresentOrFresh(offset)) || (end % ls != 0 && end != _virtualSize && !SectorPresentOrFresh(end - 1)))
            throw new DiskImageException(ErrorKind.InvalidArgument,
                $"write [{offset}, +{length}) covers part of a logical sector this differencing layer does not hold; use GetWriteSpan", Path);
    }

    private bool SectorPresentOrFresh(long pos)
    {
        var e = _bat.Payload(pos / _parameters.BlockSize);
        return e.State != VhdxBatEntry.PartiallyPresent && e.State != VhdxBatEntry.NotPresent || e.State == VhdxBatEntry.PartiallyPresent && _bitmap.IsPresent(pos / _logicalSectorSize);
    }

    private long Allocate(long size)
    {
        // MS-VHDX 2.5: payload and sector bitmap blocks are 1 MiB aligned. New space always comes from past the end of
        // the file, never from a hole a crash may have left, so a block is never referenced twice.
        long off = SpanHelpers.AlignUp(Math.Max(_file.Length, _allocationEnd), MiB);
        _allocationEnd = off + size;
        _file.SetLength(_allocationEnd);
        return off;
    }

    public void WriteZeroes(long offset, long length)
    {
        if (!IsWritable) ThrowHelper.ReadOnly(Path, "write");
        if (offset < 0 || length < 0 || offset > _virtualSize - length) ThrowHelper.OutOfBounds(Path, offset, length, _virtualSize);
        long bs = _parameters.BlockSize;
        if (offset % bs != 0 || (length % bs != 0 && offset + length != _virtualSize))
            ThrowHelper.InvalidArgument($"WriteZeroes needs a block-aligned range (block size {bs}), got [{offset}, +{length})", Path);
        lock (_sync)
        {
            for (long block = offset / bs; block * bs < offset + length; block++)
            {
                var e = _bat.Payload(block);
                if (e.State == VhdxBatEntry.Zero) continue;
                if (!IsDifferencing && e.State is VhdxBatEntry.NotPresent or VhdxBatEntry.Undefined or VhdxBatEntry.Unmapped) continue;
                BeginChange(content: true);
                if (!IsDifferencing && _parameters.LeaveBlockAllocated && e.State == VhdxBatEntry.FullyPresent)
                {
                    // MS-VHDX 2.6.2.1 LeaveBlockAllocated: a fully provisioned file keeps its blocks; zero them in place.
                    _file.WriteZeros(e.FileOffset, _bat.BlockExtent(block));
                    continue;
                }
                // The old payload, if any, is left unreferenced (a leak that check reports and compact reclaims).
                _bat.Write(_bat.PayloadIndex(block), VhdxBatEntry.Make(VhdxBatEntry.Zero, 0));
                if (_sectors.DirtyCount >= CommitThreshold) CommitPending();
            }
        }
    }
}
