using System.Buffers.Binary;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Formats.Vhdx.Log;
using DiskSnapshotEngine.IO;

// The reader and writer keep the driver's namespace (they are its seam to the log); the on-disk structures they
// read and write are in DiskSnapshotEngine.Formats.Vhdx.Log beside them.
namespace DiskSnapshotEngine.Formats.Vhdx;

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
            foreach (var w in writes)
            {
                if (w.Data is not null) _file.Write(w.Data, w.FileOffset);
                else _file.WriteZeros(w.FileOffset, w.ZeroLength);
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
        BinaryPrimitives.WriteUInt32LittleEndian(entry.AsSpan(LogEntryHeader.ChecksumOffset), crc);
        return entry;
    }
}
