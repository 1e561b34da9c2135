namespace DiskSnapshotEngine.Operations;

/// <summary>What a data-moving operation did.</summary>
/// <param name="BytesWritten">Bytes of data written to the target.</param>
/// <param name="BytesZero">Bytes the source held as data but that were all zeros, so were skipped or recorded as zero.</param>
public sealed record CopyStats(long BytesWritten, long BytesZero);
