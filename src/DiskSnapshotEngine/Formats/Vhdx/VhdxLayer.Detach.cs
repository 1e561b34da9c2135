using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;
using static DiskSnapshotEngine.Formats.Vhdx.VhdxConstants;

namespace DiskSnapshotEngine.Formats.Vhdx;

public sealed partial class VhdxLayer
{
    /// <summary>
    /// Makes a differencing VHDX a base image in place, in three steps that each keep what it reads:
    /// (1) every PAYLOAD_BLOCK_PARTIALLY_PRESENT block becomes FULLY_PRESENT, its absent sectors written as zeros
    /// (the caller has copied every parent byte in, so they read zeros already); (2) the sector bitmap entries become
    /// SB_BLOCK_NOT_PRESENT (no block needs them any more); (3) one log entry clears HasParent (MS-VHDX 2.6.2.1) and
    /// removes the parent locator item (2.6.2.6): before it the file is a child reading only itself, after it a base.
    /// </summary>
    public void DetachFromParent()
    {
        if (!IsWritable) ThrowHelper.ReadOnly(Path, "detach from the parent");
        if (!IsDifferencing)
            throw new DiskImageException(ErrorKind.Unsupported, "the image has no parent to detach from (HasParent is not set)", Path, "file parameters");
        lock (_sync)
        {
            BeginChange(content: false);
            long bs = _parameters.BlockSize;
            for (long block = 0; block < _payloadBlocks; block++)
            {
                var e = PayloadEntry(block);
                if (e.State != VhdxBatEntry.PartiallyPresent) continue;
                long start = block * bs, end = start + BlockExtent(block);
                for (long pos = start; pos < end;)
                {
                    var (present, runEnd) = SectorRun(pos, end);
                    if (!present) ZeroFill(e.FileOffset + (pos - start), runEnd - pos);
                    pos = runEnd;
                }
                _payloadUnflushed = true;
                WriteBatEntry(PayloadBatIndex(block), VhdxBatEntry.Make(VhdxBatEntry.FullyPresent, e.FileOffset));
                if (_sectors.DirtyCount >= CommitThreshold) CommitPending();
            }
            for (long chunk = 0; chunk < CeilDiv(_payloadBlocks, _chunkRatio); chunk++)
            {
                if (BitmapEntry(chunk).State == VhdxBatEntry.SbNotPresent) continue;
                // The bitmap block's space is left unreferenced (a leak that compact reclaims).
                WriteBatEntry(BitmapBatIndex(chunk), VhdxBatEntry.Make(VhdxBatEntry.SbNotPresent, 0));
                if (_sectors.DirtyCount >= CommitThreshold) CommitPending();
            }
            CommitPending();

            var parameters = _parameters with { HasParent = false };
            int fp = _metadataTable.Entries.FindIndex(x => x.ItemId == FileParametersItem && !x.IsUser);
            Span<byte> raw = stackalloc byte[8];
            parameters.Write(raw);
            PatchMetadata(_metadataTable.Entries[fp].Offset, raw);
            int tableBytes = (int)SpanHelpers.AlignUp(32 + 32L * _metadataTable.Entries.Count, 4096);
            _metadataTable.Entries.RemoveAll(x => x.ItemId == ParentLocatorItem && !x.IsUser);
            var table = new byte[MetadataTableSize];
            _metadataTable.Write(table);
            PatchMetadata(0, table.AsSpan(0, tableBytes));
            CommitPending();
            _file.Flush();
            _parameters = parameters;
            _batEntryCount = BatEntriesFor(_payloadBlocks, _chunkRatio, hasParent: false);
            _locator = null;
            _parentLink = null;
        }
    }
}
