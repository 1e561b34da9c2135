namespace DiskSnapshotEngine.Block;

/// <summary>One piece of a range cut at block boundaries: it lies inside block <see cref="Block"/>.</summary>
/// <param name="Block">The block's index (offset / block size).</param>
/// <param name="InBlock">Where the piece starts inside the block.</param>
/// <param name="Offset">Where the piece starts on the virtual disk.</param>
/// <param name="Start">Where the piece starts in the caller's buffer (Offset minus the range's start).</param>
/// <param name="Length">The piece's length: up to the block's end or the range's, whichever comes first.</param>
internal readonly record struct BlockPiece(long Block, long InBlock, long Offset, int Start, int Length);

/// <summary>
/// Cuts [offset, +length) at block boundaries, so that each piece is answered by one map entry (BAT, block map,
/// chain block): the one loop by which the chain and the layers split a write into allocate-or-write steps per block.
/// A struct enumerator, so <c>foreach</c> over it allocates nothing on the write path.
/// </summary>
internal struct BlockPieces
{
    private readonly long _end;
    private readonly long _start;
    private readonly long _blockSize;
    private long _next;

    private BlockPieces(long offset, int length, long blockSize)
    {
        _start = _next = offset;
        _end = offset + length;
        _blockSize = blockSize;
        Current = default;
    }

    /// <summary>The pieces of [<paramref name="offset"/>, +<paramref name="length"/>) for blocks of <paramref name="blockSize"/> bytes.</summary>
    /// <remarks>The short last block of a disk needs no special case: a range never goes past the disk's end.</remarks>
    public static BlockPieces Of(long offset, int length, long blockSize) => new(offset, length, blockSize);

    /// <summary>The piece the enumeration is at.</summary>
    public BlockPiece Current { get; private set; }

    /// <summary>For <c>foreach</c>: the struct is its own enumerator.</summary>
    public readonly BlockPieces GetEnumerator() => this;

    /// <summary>Steps to the next piece; false once the range is covered.</summary>
    public bool MoveNext()
    {
        if (_next >= _end) return false;
        long block = _next / _blockSize;
        long inBlock = _next - block * _blockSize;
        int n = (int)Math.Min(_end - _next, _blockSize - inBlock);
        Current = new BlockPiece(block, inBlock, _next, (int)(_next - _start), n);
        _next += n;
        return true;
    }
}
