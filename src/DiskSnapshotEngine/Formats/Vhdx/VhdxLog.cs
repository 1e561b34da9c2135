using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Formats.Vhdx.Log;
using DiskSnapshotEngine.IO;

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
    private const int ZeroChunk = 1 << 20;

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

        var scanner = new EntryScanner(file, logOffset, logLength, logGuid);
        var valid = new Dictionary<uint, LogEntryHeader>();
        for (uint off = 0; off < logLength; off += Sector)
            if (scanner.TryValidate(off, out var header)) valid[off] = header;

        var index = new SequenceIndex(valid, logLength);
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

    /// <summary>Applies a sequence to a writable file (then the caller flushes) — used by a read-write open.</summary>
    public static void Apply(VhdxLogSequence sequence, IImageFile target)
    {
        ArgumentNullException.ThrowIfNull(sequence);
        ArgumentNullException.ThrowIfNull(target);
        // An overlay passed as IImageFile still gets the in-memory replay (its Write refuses by design).
        if (target is MemoryOverlayFile overlay)
        {
            Apply(sequence, overlay);
            return;
        }
        byte[]? zeros = null;
        foreach (var w in sequence.Writes)
        {
            if (w.Data is not null)
            {
                target.Write(w.Data, w.FileOffset);
                continue;
            }
            // Past the end of the file a zero run needs no bytes: the extension below reads as zeros.
            long end = Math.Min(w.FileOffset + w.ZeroLength, target.Length);
            for (long pos = w.FileOffset; pos < end; pos += ZeroChunk)
            {
                zeros ??= new byte[ZeroChunk];
                target.Write(zeros.AsSpan(0, (int)Math.Min(ZeroChunk, end - pos)), pos);
            }
        }
        // 2.3.3: after replay the file is at least LastFileOffset long (it may have been extended before the crash).
        long minLength = Math.Max(sequence.LastFileOffset, sequence.FlushedFileOffset);
        if (target.Length < minLength) target.SetLength(minLength);
    }

    /// <summary>Applies a sequence to an in-memory overlay — used by a read-only open, which never modifies the file.</summary>
    public static void Apply(VhdxLogSequence sequence, MemoryOverlayFile target)
    {
        ArgumentNullException.ThrowIfNull(sequence);
        ArgumentNullException.ThrowIfNull(target);
        byte[]? zeros = null;
        foreach (var w in sequence.Writes)
        {
            if (w.Data is not null)
            {
                target.Patch(w.Data, w.FileOffset);
                continue;
            }
            long end = Math.Min(w.FileOffset + w.ZeroLength, target.Length);
            for (long pos = w.FileOffset; pos < end; pos += ZeroChunk)
            {
                zeros ??= new byte[ZeroChunk];
                target.Patch(zeros.AsSpan(0, (int)Math.Min(ZeroChunk, end - pos)), pos);
            }
        }
        long minLength = Math.Max(sequence.LastFileOffset, sequence.FlushedFileOffset);
        if (target.Length < minLength) target.PatchLength(minLength);
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

    /// <summary>
    /// Every valid entry has at most one successor (the valid entry starting where it ends, with the next sequence
    /// number), so the entries form a forest whose edges point to successors. A head's sequence is valid when the
    /// entry at its Tail reaches the head by successors, i.e. the head is an ancestor of (or is) that entry, and the
    /// entries in between fit in the ring once. Ancestry is an interval test on a depth-first numbering.
    /// </summary>
    private sealed class SequenceIndex
    {
        private readonly Dictionary<uint, int> _indexOf = new();
        private readonly int[] _enter, _leave;
        private readonly long[] _lengthToRoot; // sum of EntryLength from an entry to the end of its successor chain
        private readonly uint _logLength;

        public SequenceIndex(Dictionary<uint, LogEntryHeader> valid, uint logLength)
        {
            _logLength = logLength;
            var offsets = valid.Keys.ToArray();
            int n = offsets.Length;
            for (int i = 0; i < n; i++) _indexOf[offsets[i]] = i;
            var successor = new int[n];
            var children = new List<int>?[n];
            for (int i = 0; i < n; i++)
            {
                var e = valid[offsets[i]];
                uint next = (uint)((offsets[i] + (ulong)e.EntryLength) % logLength);
                successor[i] = e.SequenceNumber < ulong.MaxValue && _indexOf.TryGetValue(next, out int j)
                    && valid[next].SequenceNumber == e.SequenceNumber + 1 ? j : -1;
                if (successor[i] >= 0) (children[successor[i]] ??= new List<int>()).Add(i);
            }
            // Successors have higher sequence numbers, so descending order computes a successor's sum first.
            _lengthToRoot = new long[n];
            foreach (int i in Enumerable.Range(0, n).OrderByDescending(i => valid[offsets[i]].SequenceNumber))
                _lengthToRoot[i] = valid[offsets[i]].EntryLength + (successor[i] >= 0 ? _lengthToRoot[successor[i]] : 0);
            _enter = new int[n];
            _leave = new int[n];
            int clock = 0;
            var stack = new Stack<(int Node, bool Done)>();
            for (int root = 0; root < n; root++)
            {
                if (successor[root] >= 0) continue;
                stack.Push((root, false));
                while (stack.Count > 0)
                {
                    var (node, done) = stack.Pop();
                    if (done) { _leave[node] = clock++; continue; }
                    _enter[node] = clock++;
                    stack.Push((node, true));
                    if (children[node] is { } kids) foreach (int k in kids) stack.Push((k, false));
                }
            }
        }

        public bool IsValidHead(uint headOffset, in LogEntryHeader head)
        {
            if (!_indexOf.TryGetValue(head.Tail, out int t)) return false;
            int h = _indexOf[headOffset];
            bool reaches = _enter[h] <= _enter[t] && _leave[t] <= _leave[h];
            return reaches && _lengthToRoot[t] - _lengthToRoot[h] + head.EntryLength <= _logLength;
        }
    }

    /// <summary>Reads and validates entries sector by sector (memory: one sector, whatever an entry claims).</summary>
    private sealed class EntryScanner(IImageFile file, long logOffset, uint logLength, Guid logGuid)
    {
        private readonly byte[] _sector = new byte[Sector];

        private void ReadSector(uint entryOffset, long index)
        {
            long inLog = (entryOffset + index * Sector) % logLength;
            file.ReadExactly(_sector, logOffset + inLog, EntryStructure);
        }

        /// <summary>True when the entry at <paramref name="entryOffset"/> is valid (2.3.1: signature, lengths, descriptors, data sectors, checksum).</summary>
        public bool TryValidate(uint entryOffset, out LogEntryHeader header)
        {
            header = default;
            ReadSector(entryOffset, 0);
            if (!LogEntryHeader.HasSignature(_sector)) return false;
            header = LogEntryHeader.Parse(_sector);
            if (header.EntryLength == 0 || header.EntryLength % Sector != 0 || header.EntryLength > logLength) return false;
            if (header.Tail % Sector != 0 || header.Tail >= logLength) return false;
            if (header.LogGuid != logGuid) return false;
            if (header.FlushedFileOffset > VhdxLogLayout.MaxFileOffset || header.LastFileOffset > VhdxLogLayout.MaxFileOffset) return false;
            long sectors = header.EntryLength / Sector;
            // Checked against the entry's own length before anything is sized by DescriptorCount.
            long descriptorSectors = LogEntryHeader.DescriptorSectors(header.DescriptorCount);
            if (descriptorSectors > sectors) return false;

            uint crc = VhdxLogLayout.CrcSeed;
            long dataSectors = 0;
            for (long i = 0; i < sectors; i++)
            {
                if (i > 0) ReadSector(entryOffset, i);
                if (i < descriptorSectors)
                {
                    if (!CheckDescriptors(i, header, ref dataSectors)) return false;
                    if (i == 0)
                    {
                        _sector.AsSpan(LogEntryHeader.ChecksumOffset, 4).Clear();
                    }
                    // An entry is exactly its descriptor sectors plus one data sector per data descriptor (as qemu
                    // also requires). Refusing slack here also bounds the scan: a forged header can make the reader
                    // walk only up to the next sector that is not a valid data sector, not the whole ring.
                    if (i == descriptorSectors - 1 && descriptorSectors + dataSectors != sectors) return false;
                }
                else if (i - descriptorSectors < dataSectors && !DataSector.IsValid(_sector, header.SequenceNumber))
                {
                    return false;
                }
                crc = VhdxLogLayout.CrcUpdate(crc, _sector);
            }
            return VhdxLogLayout.CrcFinish(crc) == header.Checksum;
        }

        private bool CheckDescriptors(long sectorIndex, in LogEntryHeader header, ref long dataSectors)
        {
            var (first, last) = DescriptorRange(sectorIndex, header.DescriptorCount);
            for (long k = first; k < last; k++)
            {
                var d = _sector.AsSpan((int)(LogEntryHeader.Size + k * LogDescriptor.Size - sectorIndex * Sector), LogDescriptor.Size);
                switch (LogDescriptor.SignatureOf(d))
                {
                    case ZeroDescriptor.Signature:
                        var z = ZeroDescriptor.Parse(d);
                        if (z.SequenceNumber != header.SequenceNumber || z.ZeroLength == 0 || z.ZeroLength % Sector != 0
                            || z.FileOffset % Sector != 0 || z.FileOffset > VhdxLogLayout.MaxFileOffset
                            || z.ZeroLength > VhdxLogLayout.MaxFileOffset - z.FileOffset) return false;
                        break;
                    case DataDescriptor.Signature:
                        var dd = DataDescriptor.Parse(d);
                        if (dd.SequenceNumber != header.SequenceNumber || dd.FileOffset % Sector != 0
                            || dd.FileOffset > VhdxLogLayout.MaxFileOffset - Sector) return false;
                        dataSectors++;
                        break;
                    default:
                        return false;
                }
            }
            return true;
        }

        /// <summary>Descriptor indices [first, last) stored in a given sector of the entry (they follow the 64-byte header).</summary>
        private static (long First, long Last) DescriptorRange(long sectorIndex, uint count)
        {
            long start = sectorIndex * Sector, end = start + Sector;
            long first = Math.Max(0, (start - LogEntryHeader.Size + LogDescriptor.Size - 1) / LogDescriptor.Size);
            long last = Math.Min(count, (end - LogEntryHeader.Size) / LogDescriptor.Size);
            return (first, Math.Max(first, last));
        }

        /// <summary>Appends an already validated entry's writes in descriptor order (data descriptors pair with data sectors in order).</summary>
        public void CollectWrites(uint entryOffset, in LogEntryHeader header, List<VhdxLogWrite> writes)
        {
            long descriptorSectors = LogEntryHeader.DescriptorSectors(header.DescriptorCount);
            var descriptors = new List<(bool IsData, ZeroDescriptor Zero, DataDescriptor Data)>((int)header.DescriptorCount);
            for (long i = 0; i < descriptorSectors; i++)
            {
                ReadSector(entryOffset, i);
                var (first, last) = DescriptorRange(i, header.DescriptorCount);
                for (long k = first; k < last; k++)
                {
                    var d = _sector.AsSpan((int)(LogEntryHeader.Size + k * LogDescriptor.Size - i * Sector), LogDescriptor.Size);
                    descriptors.Add(LogDescriptor.SignatureOf(d) == DataDescriptor.Signature
                        ? (true, default, DataDescriptor.Parse(d))
                        : (false, ZeroDescriptor.Parse(d), default));
                }
            }
            long dataIndex = 0;
            foreach (var (isData, zero, data) in descriptors)
            {
                if (isData)
                {
                    ReadSector(entryOffset, descriptorSectors + dataIndex++);
                    writes.Add(new VhdxLogWrite((long)data.FileOffset, DataSector.Decode(_sector, data), Sector));
                }
                else
                {
                    writes.Add(new VhdxLogWrite((long)zero.FileOffset, null, (long)zero.ZeroLength));
                }
            }
        }
    }
}

/// <summary>
/// Appends log entries for metadata updates and applies them (MS-VHDX 2.3.1 log entry; ordering per 2.3):
/// write the entry, flush, write the sectors in place, flush. The caller must have set the header's LogGuid to
/// the writer's logGuid (and flushed) before the first Commit; after a clean close it may clear it.
/// </summary>
/// <remarks>
/// Each Commit is one entry, so one update is atomic only if it fits one entry: at most
/// <see cref="MaxSectorsPerEntry"/> 4 KiB sectors including the header/descriptor sectors (a 1 MiB log: 253 data
/// sectors). Larger updates are refused with InvalidArgument rather than split, because a split update could be
/// replayed half-way after a crash.
/// </remarks>
internal sealed class VhdxLogWriter
{
    private const int Sector = VhdxLogLayout.SectorSize;
    private const int ZeroChunk = 1 << 20;
    private readonly IImageFile _file;
    private readonly long _logOffset;
    private readonly uint _logLength;
    private readonly Guid _logGuid;
    private ulong _sequenceNumber;
    private uint _head;
    private bool _failed;

    /// <param name="file">The image file, writable.</param>
    /// <param name="logOffset">LogOffset from the header.</param>
    /// <param name="logLength">LogLength from the header (multiple of 1 MiB).</param>
    /// <param name="logGuid">The LogGuid now in the header.</param>
    /// <param name="nextSequenceNumber">Sequence number for the first entry (greater than any in the log; 1 for a fresh log).</param>
    /// <param name="headOffset">Where in the log the first entry goes (0 for a fresh log, or the replayed sequence's HeadOffset).</param>
    public VhdxLogWriter(IImageFile file, long logOffset, uint logLength, Guid logGuid, ulong nextSequenceNumber, uint headOffset = 0)
    {
        ArgumentNullException.ThrowIfNull(file);
        if (!file.CanWrite) ThrowHelper.ReadOnly(file.Path, "write the VHDX log");
        if (logLength < 2 * Sector || logLength % Sector != 0 || logOffset <= 0 || logOffset % Sector != 0)
            ThrowHelper.InvalidArgument($"log region (LogOffset {logOffset}, LogLength {logLength}) is not a 4 KiB-aligned region of at least two sectors", file.Path);
        if (headOffset % Sector != 0 || headOffset >= logLength)
            ThrowHelper.InvalidArgument($"log head offset {headOffset} is not a sector inside the log of {logLength} bytes", file.Path);
        if (nextSequenceNumber == 0) ThrowHelper.InvalidArgument("log sequence numbers start at 1", file.Path);
        if (logGuid == Guid.Empty) ThrowHelper.InvalidArgument("a log entry needs a non-zero LogGuid", file.Path);
        _file = file;
        _logOffset = logOffset;
        _logLength = logLength;
        _logGuid = logGuid;
        _sequenceNumber = nextSequenceNumber;
        _head = headOffset;
    }

    /// <summary>
    /// Largest entry, in sectors: one sector stays free so that a full ring never looks like an empty one to readers
    /// that compare head and tail (qemu).
    /// </summary>
    public long MaxSectorsPerEntry => _logLength / Sector - 1;

    /// <summary>Sequence number the next entry will carry.</summary>
    public ulong NextSequenceNumber => _sequenceNumber;

    /// <summary>Offset inside the log where the next entry starts (or 0 when it does not fit before the end).</summary>
    public uint HeadOffset => _head;

    /// <summary>
    /// Makes a set of 4 KiB sector updates atomic: after a crash at any point the file either replays to all of them
    /// or shows none. <paramref name="flushedFileOffset"/> is the file size already durable (payload written and flushed
    /// before the call); <paramref name="lastFileOffset"/> the size the file has now.
    /// </summary>
    /// <exception cref="DiskImageException">InvalidArgument for a malformed write or an update too large for one entry;
    /// Io/DiskFull from the file (after which this writer refuses further commits: the log must be replayed on reopen).</exception>
    public void Commit(IReadOnlyList<VhdxLogWrite> writes, long flushedFileOffset, long lastFileOffset)
    {
        ArgumentNullException.ThrowIfNull(writes);
        if (_failed)
            throw new DiskImageException(ErrorKind.Io, "an earlier log commit failed; reopen the image so the log is replayed", _file.Path, "Log");
        if (writes.Count == 0) return;
        if (flushedFileOffset < 0 || lastFileOffset < flushedFileOffset || lastFileOffset > VhdxLogLayout.MaxFileOffset)
            ThrowHelper.InvalidArgument($"FlushedFileOffset {flushedFileOffset} / LastFileOffset {lastFileOffset} are inconsistent", _file.Path);
        // Readers treat FlushedFileOffset past the end of the file as lost data (CorruptImage), so it must be true now.
        if (flushedFileOffset > _file.Length)
            ThrowHelper.InvalidArgument($"FlushedFileOffset {flushedFileOffset} is past the end of the file ({_file.Length} bytes)", _file.Path);

        long dataCount = 0;
        foreach (var w in writes)
        {
            if (w.FileOffset < 0 || w.FileOffset % Sector != 0 || w.FileOffset > VhdxLogLayout.MaxFileOffset - Sector)
                ThrowHelper.InvalidArgument($"log write at {w.FileOffset} is not a 4 KiB-aligned file offset", _file.Path);
            if (w.Data is not null)
            {
                if (w.Data.Length != Sector) ThrowHelper.InvalidArgument($"log write at {w.FileOffset} carries {w.Data.Length} bytes, not one 4 KiB sector", _file.Path);
                dataCount++;
            }
            else if (w.ZeroLength <= 0 || w.ZeroLength % Sector != 0 || w.ZeroLength > VhdxLogLayout.MaxFileOffset - w.FileOffset)
            {
                ThrowHelper.InvalidArgument($"zero run at {w.FileOffset} has length {w.ZeroLength}, not a positive multiple of 4 KiB", _file.Path);
            }
        }
        long descriptorSectors = LogEntryHeader.DescriptorSectors(writes.Count);
        long sectors = descriptorSectors + dataCount;
        if (sectors > MaxSectorsPerEntry)
            ThrowHelper.InvalidArgument(
                $"an update of {writes.Count} writes needs a log entry of {sectors} sectors but the log of {_logLength} bytes holds at most {MaxSectorsPerEntry}", _file.Path);

        // Entries are kept contiguous: one that would run past the end of the ring starts again at 0. Every entry is
        // its own tail, so nothing before it is needed and the skipped space holds only stale entries.
        uint entryOffset = _head + sectors * Sector > _logLength ? 0 : _head;
        var entry = BuildEntry(writes, entryOffset, (uint)(sectors * Sector), descriptorSectors, flushedFileOffset, lastFileOffset);

        try
        {
            // Crash ordering (2.3.3): the entry is durable before any sector changes in place, and the in-place
            // sectors are durable before the next entry (whose Tail is itself) declares this one no longer needed.
            _file.Write(entry, _logOffset + entryOffset);
            _file.Flush();
            byte[]? zeros = null;
            foreach (var w in writes)
            {
                if (w.Data is not null)
                {
                    _file.Write(w.Data, w.FileOffset);
                    continue;
                }
                for (long pos = w.FileOffset, end = w.FileOffset + w.ZeroLength; pos < end; pos += ZeroChunk)
                {
                    zeros ??= new byte[ZeroChunk];
                    _file.Write(zeros.AsSpan(0, (int)Math.Min(ZeroChunk, end - pos)), pos);
                }
            }
            _file.Flush();
        }
        catch
        {
            _failed = true;
            throw;
        }
        _head = (uint)((entryOffset + (ulong)entry.Length) % _logLength);
        _sequenceNumber++;
    }

    private byte[] BuildEntry(IReadOnlyList<VhdxLogWrite> writes, uint entryOffset, uint entryLength, long descriptorSectors,
        long flushedFileOffset, long lastFileOffset)
    {
        var entry = new byte[entryLength];
        ulong seq = _sequenceNumber;
        int descriptorAt = LogEntryHeader.Size;
        long dataSector = descriptorSectors;
        foreach (var w in writes)
        {
            var slot = entry.AsSpan(descriptorAt, LogDescriptor.Size);
            if (w.Data is not null)
            {
                DataSector.Encode(w.Data, (ulong)w.FileOffset, seq, entry.AsSpan((int)(dataSector++ * Sector), Sector)).WriteTo(slot);
            }
            else
            {
                new ZeroDescriptor((ulong)w.ZeroLength, (ulong)w.FileOffset, seq).WriteTo(slot);
            }
            descriptorAt += LogDescriptor.Size;
        }
        var header = new LogEntryHeader(0, entryLength, entryOffset, seq, (uint)writes.Count, _logGuid,
            (ulong)flushedFileOffset, (ulong)lastFileOffset);
        header.WriteTo(entry);
        uint crc = VhdxLogLayout.CrcFinish(VhdxLogLayout.CrcUpdate(VhdxLogLayout.CrcSeed, entry));
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(entry.AsSpan(LogEntryHeader.ChecksumOffset), crc);
        return entry;
    }
}
