using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;

namespace DiskSnapshotEngine.Formats.Vdi;

// Placement (IPlaceableLayer): whole blocks reserved in the data area for bytes another call puts there (shared
// extents). Their map entries wait until that data is in: FinishPlacements keeps an allocation's crash order (data,
// flush, cBlocksAllocated, flush, map entries, flush), once for a batch of blocks instead of once per block.
internal sealed partial class VdiLayer
{
    private const int PlacementBatch = 256;
    private readonly Dictionary<uint, uint> _placed = new(); // virtual block -> block index, not yet in the map

    bool IPlaceableLayer.TryPlace(long offset, long length, out long fileOffset, out long placed)
    {
        EnsureWritable("write");
        if (length <= 0) ThrowHelper.OutOfBounds(Path, offset, length, _size);
        CheckRange(offset, length);
        (fileOffset, placed) = (-1, 0);
        // The ranges placed before are filled by now (the caller's contract), so their entries may be published.
        if (_placed.Count >= PlacementBatch) FinishPlacements();
        uint block = (uint)(offset / _cbBlock);
        long inBlock = offset - BlockStart(block);
        long n = Math.Min(length, BlockLength(block) - inBlock);
        uint entry = _map.Get(block);
        if (entry < VdiBlockMap.Zero)
        {
            BeginContentChange();
            fileOffset = DataOffset(block, entry) + inBlock;
        }
        else
        {
            // A fresh block reads as zeros: right for the rest of a ZERO block or of a base image's FREE block, not for
            // a child's FREE block (its parent shows there). The extra area before each block is not ours to fill.
            bool whole = inBlock == 0 && n == BlockLength(block);
            if (_header.CbBlockExtra != 0 || (IsDiffLike && entry == VdiBlockMap.Free && !whole)) return false;
            if (!_placed.TryGetValue(block, out uint index))
            {
                if (_nextBlock >= _header.CBlocks) return false;
                index = (uint)_nextBlock;
                BeginContentChange();
                long end = _header.OffData + (index + 1L) * _stride;
                if (File.Length < end) File.SetLength(end);
                _nextBlock = index + 1L;
                _placed[block] = index;
            }
            fileOffset = _header.OffData + index * _stride + inBlock;
        }
        placed = n;
        return true;
    }

    /// <summary>Publishes the placed blocks (their data is in the file by now) in an allocation's crash order.</summary>
    private void FinishPlacements()
    {
        if (_placed.Count == 0) return;
        File.Flush();
        _header.CBlocksAllocated = (uint)Math.Min(_nextBlock, _header.CBlocks);
        _header.WriteTo(File);
        File.Flush();
        foreach (var (block, index) in _placed) _map.Set(block, index);
        File.Flush();
        _placed.Clear();
    }
}
