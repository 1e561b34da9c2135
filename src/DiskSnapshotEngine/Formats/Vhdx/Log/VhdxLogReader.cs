using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Formats.Vhdx.Log;
using DiskSnapshotEngine.IO;

// The reader and writer keep the driver's namespace (they are its seam to the log); the on-disk structures they
// read and write are in DiskSnapshotEngine.Formats.Vhdx.Log beside them.
namespace DiskSnapshotEngine.Formats.Vhdx;

// The seam between the VHDX driver and its log (MS-VHDX 2.3.3). The driver never writes BAT, sector-bitmap or
// metadata-region sectors in place itself: it hands whole 4 KiB sectors to VhdxLogWriter.Commit.
//
// Log region (MS-VHDX 2.3): a circular buffer of 4 KiB sectors holding entries
//   | header+descriptors (1..n sectors) | data sector | data sector | ... |   <- one entry, EntryLength bytes
// An entry may wrap from the end of the region to its start (the reader accepts that; the writer never needs it).
// Sequence rule used here (2.3.2 log sequence, 2.3.3 replay): the head is a valid entry; its Tail names the oldest entry still needed; every entry from
// that one to the head is valid, carries the LogGuid and a SequenceNumber one greater than the entry before it, and
// the entries follow each other without gaps. The active sequence is the valid one whose head has the highest
// SequenceNumber; replay applies its entries oldest first.

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
    private const string EntryStructure = "Log Entry";
    private const int Sector = VhdxLogLayout.SectorSize;

    /// <summary>
    /// Finds the active sequence (MS-VHDX 2.3.3: the valid sequence with the highest sequence number whose entries
    /// all carry <paramref name="logGuid"/>), or null when the log holds none. Never writes.
    /// </summary>
    /// <exception cref="Errors.DiskImageException">CorruptImage when the log region is unusable (e.g. FlushedFileOffset beyond the file).</exception>
    public static VhdxLogSequence? FindActiveSequence(IImageFile file, long logOffset, uint logLength, Guid logGuid)
    {
        // A zero LogGuid means no entry is to be replayed (2.2.2: LogGuid), whatever the region holds.
        if (logGuid == Guid.Empty) return null;
        ValidateRegion(file, logOffset, logLength);

        var scanner = new VhdxLogEntryScanner(file, logOffset, logLength, logGuid);
        var valid = new Dictionary<uint, LogEntryHeader>();
        for (uint off = 0; off < logLength; off += Sector)
            if (scanner.TryValidate(off, out var header)) valid[off] = header;

        var index = new VhdxLogSequenceIndex(valid, logLength);
        foreach (var (headOffset, head) in valid.OrderByDescending(kv => kv.Value.SequenceNumber))
        {
            // The index answers "is this head's sequence valid" in O(1), so a hostile log full of near-miss
            // sequences costs O(n log n), not a walk per head; the walk below then runs once.
            if (!index.IsValidHead(headOffset, head)) continue;
            var entries = TryBuildSequence(headOffset, head, valid, logLength);
            if (entries is null) continue;
            long headFileOffset = logOffset + headOffset;
            // 2.3.3: the file must already hold everything up to FlushedFileOffset; if it is shorter, data the log
            // relies on was lost and replay cannot make the file consistent.
            if (head.FlushedFileOffset > (ulong)file.Length)
                ThrowHelper.Corrupt(file.Path, EntryStructure, headFileOffset,
                    $"FlushedFileOffset {head.FlushedFileOffset} is past the end of the file ({file.Length} bytes)");
            var writes = new List<VhdxLogWrite>();
            foreach (uint off in entries) scanner.CollectWrites(off, valid[off], writes);
            return new VhdxLogSequence(writes, head.SequenceNumber, (long)head.FlushedFileOffset, (long)head.LastFileOffset,
                (uint)((headOffset + (ulong)head.EntryLength) % logLength));
        }
        return null;
    }

    /// <summary>
    /// Applies a sequence to a file: the real file on a read-write open (then the caller flushes), or an in-memory
    /// overlay on a read-only open, which never modifies the file.
    /// </summary>
    public static void Apply(VhdxLogSequence sequence, IImageFile target)
    {
        ArgumentNullException.ThrowIfNull(sequence);
        ArgumentNullException.ThrowIfNull(target);
        // An overlay's Write refuses by design: the replay patches its memory instead.
        var overlay = target as MemoryOverlayFile;
        void Put(ReadOnlySpan<byte> data, long at)
        {
            if (overlay is null) target.Write(data, at);
            else overlay.Patch(data, at);
        }
        foreach (var w in sequence.Writes)
        {
            if (w.Data is not null)
            {
                Put(w.Data, w.FileOffset);
                continue;
            }
            // Past the end of the file a zero run needs no bytes: the extension below reads as zeros.
            long end = Math.Min(w.FileOffset + w.ZeroLength, target.Length);
            ZeroFill.Run(w.FileOffset, end - w.FileOffset, Put);
        }
        // 2.3.3: after replay the file is at least LastFileOffset long (it may have been extended before the crash).
        long minLength = Math.Max(sequence.LastFileOffset, sequence.FlushedFileOffset);
        if (target.Length >= minLength) return;
        if (overlay is null) target.SetLength(minLength);
        else overlay.PatchLength(minLength);
    }

    private static void ValidateRegion(IImageFile file, long logOffset, uint logLength)
    {
        // 2.2.2: LogOffset and LogLength are multiples of 1 MiB; the region must lie inside the file.
        const long MiB = 1 << 20;
        if (logLength == 0 || logLength % MiB != 0 || logOffset < MiB || logOffset % MiB != 0)
            ThrowHelper.Corrupt(file.Path, "Log", logOffset,
                $"log region (LogOffset {logOffset}, LogLength {logLength}) is not a non-empty 1 MiB-aligned region after the header section");
        if (logOffset > file.Length - logLength)
            ThrowHelper.Corrupt(file.Path, "Log", logOffset,
                $"log region of {logLength} bytes at {logOffset} extends past the end of the file ({file.Length} bytes)");
    }

    /// <summary>
    /// The offsets of the entries from the head's Tail to the head, oldest first, or null when they do not form a
    /// valid sequence (a missing or out-of-order entry, or entries that would overlap themselves around the ring).
    /// </summary>
    private static List<uint>? TryBuildSequence(uint headOffset, LogEntryHeader head, Dictionary<uint, LogEntryHeader> valid, uint logLength)
    {
        if (!valid.TryGetValue(head.Tail, out var current) || current.SequenceNumber > head.SequenceNumber) return null;
        var result = new List<uint> { head.Tail };
        uint offset = head.Tail;
        ulong total = current.EntryLength;
        while (offset != headOffset)
        {
            uint next = (uint)((offset + (ulong)current.EntryLength) % logLength);
            if (current.SequenceNumber == ulong.MaxValue || !valid.TryGetValue(next, out var entry)
                || entry.SequenceNumber != current.SequenceNumber + 1) return null;
            total += entry.EntryLength;
            if (total > logLength) return null;
            result.Add(next);
            offset = next;
            current = entry;
        }
        return current.SequenceNumber == head.SequenceNumber ? result : null;
    }
}
