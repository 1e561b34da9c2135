using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;
using static DiskSnapshotEngine.Formats.Vhdx.VhdxConstants;

namespace DiskSnapshotEngine.Formats.Vhdx;

// detach: a differencing VHDX becomes a base image in place, each step keeping what the file reads.
internal sealed partial class VhdxLayer : IParentDetachable
{
    /// <summary>
    /// Makes a differencing VHDX a base image in place, in three steps that each keep what it reads (the caller has
    /// copied in every byte its parents show, so every sector this file does not hold reads zeros from them):
    /// (1) every PAYLOAD_BLOCK_PARTIALLY_PRESENT block becomes FULLY_PRESENT, its absent sectors written as zeros first;
    /// (2) the sector bitmap entries become SB_BLOCK_NOT_PRESENT (no block needs them any more; their space leaks until
    /// a compact); (3) one log entry clears HasParent (MS-VHDX 2.6.2.1) and removes the parent locator item (2.6.2.6):
    /// before it the file is a child reading only itself, after it a base. Identity and DataWriteGuid are kept.
    /// The layer must be reopened afterwards.
    /// </summary>
    public void DetachFromParent()
    {
        if (!IsWritable) ThrowHelper.ReadOnly(Path, "detach from the parent");
        if (!IsDifferencing)
            throw new DiskImageException(ErrorKind.Unsupported, "the image has no parent to detach from (HasParent is not set)", Path, "file parameters");
        lock (_sync)
        {
            VerifyTable();
            BeginChange(content: false);
            for (long block = 0; block < _bat.PayloadBlocks; block++)
            {
                var e = _bat.Payload(block);
                if (e.State != VhdxBatEntry.PartiallyPresent) continue;
                ZeroAbsentSectors(block, e.FileOffset);
                _payloadUnflushed = true;
                _bat.Write(_bat.PayloadIndex(block), VhdxBatEntry.Make(VhdxBatEntry.FullyPresent, e.FileOffset));
                if (_sectors.DirtyCount >= CommitThreshold) CommitPending();
            }
            for (long chunk = 0; chunk < VhdxBat.CeilDiv(_bat.PayloadBlocks, _bat.ChunkRatio); chunk++)
            {
                if (_bat.Bitmap(chunk).State == VhdxBatEntry.SbNotPresent) continue;
                _bat.Write(_bat.BitmapIndex(chunk), VhdxBatEntry.Make(VhdxBatEntry.SbNotPresent, 0));
                if (_sectors.DirtyCount >= CommitThreshold) CommitPending();
            }
            CommitPending();

            var parameters = _parameters with { HasParent = false };
            Span<byte> raw = stackalloc byte[8];
            parameters.Write(raw);
            _metadata.Overwrite(_metadata.IndexOf(FileParametersItem, "file parameters"), raw);
            _metadata.Remove(_metadata.IndexOf(ParentLocatorItem, "parent locator"));
            CommitPending();
            _file.Flush();
            _parameters = parameters;
            _locator = null;
            _parentLink = null;
        }
    }

    // The sectors a PARTIALLY_PRESENT block does not hold have undefined payload bytes: zeros before they become visible.
    private void ZeroAbsentSectors(long block, long fileOffset)
    {
        long start = block * _parameters.BlockSize, end = start + _bat.BlockExtent(block);
        for (long pos = start; pos < end;)
        {
            var (present, runEnd) = _bitmap.RunAt(pos, end);
            if (!present) _file.WriteZeros(fileOffset + (pos - start), runEnd - pos);
            pos = runEnd;
        }
    }
}
