using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Formats.Vhdx;

// The seam between the VHDX driver and its log (MS-VHDX 2.3.3). The driver never writes BAT, sector-bitmap or
// metadata-region sectors in place itself: it hands whole 4 KiB sectors to VhdxLogWriter.Commit.
// (Bodies are filled in by the log implementation.)

/// <summary>One write recorded in the log: a 4 KiB sector of data, or a run of zeros.</summary>
/// <param name="FileOffset">Where the bytes go (a multiple of 4096).</param>
/// <param name="Data">4096 bytes for a data descriptor, or null for a zero descriptor.</param>
/// <param name="ZeroLength">For a zero descriptor, the number of zero bytes (a multiple of 4096); otherwise 4096.</param>
internal readonly record struct VhdxLogWrite(long FileOffset, byte[]? Data, long ZeroLength);

/// <summary>The active sequence of a log, ready to replay.</summary>
/// <param name="Writes">Every write of every entry of the sequence, oldest first.</param>
/// <param name="LastSequenceNumber">SequenceNumber of the newest entry.</param>
/// <param name="FlushedFileOffset">FlushedFileOffset of the newest entry: the file must be at least this long.</param>
/// <param name="LastFileOffset">LastFileOffset of the newest entry.</param>
/// <param name="HeadOffset">Offset inside the log of the entry after the newest one (where a writer continues).</param>
internal sealed record VhdxLogSequence(IReadOnlyList<VhdxLogWrite> Writes, ulong LastSequenceNumber,
    long FlushedFileOffset, long LastFileOffset, uint HeadOffset);

internal static class VhdxLogReader
{
    /// <summary>
    /// Finds the active sequence (MS-VHDX 2.3.3: the valid sequence with the highest sequence number whose entries
    /// all carry <paramref name="logGuid"/>), or null when the log holds none. Never writes.
    /// </summary>
    /// <exception cref="Errors.DiskImageException">CorruptImage when the log region is unusable (e.g. FlushedFileOffset beyond the file).</exception>
    public static VhdxLogSequence? FindActiveSequence(IImageFile file, long logOffset, uint logLength, Guid logGuid) =>
        throw new NotImplementedException();

    /// <summary>Applies a sequence to a writable file (then the caller flushes) — used by a read-write open.</summary>
    public static void Apply(VhdxLogSequence sequence, IImageFile target) => throw new NotImplementedException();

    /// <summary>Applies a sequence to an in-memory overlay — used by a read-only open, which never modifies the file.</summary>
    public static void Apply(VhdxLogSequence sequence, MemoryOverlayFile target) => throw new NotImplementedException();
}

/// <summary>
/// Appends log entries for metadata updates and applies them (MS-VHDX 2.3.3 "Log Entry", 2.3.3 ordering):
/// write the entry, flush, write the sectors in place, flush. The caller must have set the header's LogGuid to
/// the writer's logGuid (and flushed) before the first Commit; after a clean close it may clear it.
/// </summary>
internal sealed class VhdxLogWriter
{
    /// <param name="file">The image file, writable.</param>
    /// <param name="logOffset">LogOffset from the header.</param>
    /// <param name="logLength">LogLength from the header (multiple of 1 MiB).</param>
    /// <param name="logGuid">The LogGuid now in the header.</param>
    /// <param name="nextSequenceNumber">Sequence number for the first entry (greater than any in the log; 1 for a fresh log).</param>
    /// <param name="headOffset">Where in the log the first entry goes (0 for a fresh log, or the replayed sequence's HeadOffset).</param>
    public VhdxLogWriter(IImageFile file, long logOffset, uint logLength, Guid logGuid, ulong nextSequenceNumber, uint headOffset = 0) =>
        throw new NotImplementedException();

    /// <summary>
    /// Makes a set of 4 KiB sector updates atomic: after a crash at any point the file either replays to all of them
    /// or shows none. <paramref name="flushedFileOffset"/> is the file size already durable (payload written and flushed
    /// before the call); <paramref name="lastFileOffset"/> the size the file has now.
    /// </summary>
    public void Commit(IReadOnlyList<VhdxLogWrite> writes, long flushedFileOffset, long lastFileOffset) =>
        throw new NotImplementedException();
}
