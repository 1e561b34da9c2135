using DiskSnapshotEngine.IO;
using static DiskSnapshotEngine.Formats.Vhdx.VhdxConstants;

namespace DiskSnapshotEngine.Formats.Vhdx;

/// <summary>
/// The write session of one VHDX file: the current header and its updates (MS-VHDX 2.2.2), and the log writer that
/// makes each batch of metadata sectors atomic (2.3). A session starts with the first change and ends with a clean
/// close, which records that every log entry is applied (LogGuid empty).
/// </summary>
internal sealed class VhdxSession
{
    private readonly IImageFile _file;
    private VhdxHeader _header;
    private int _currentSlot; // 0: header 1 at 64 KiB, 1: header 2 at 128 KiB
    private bool _versionChanged;
    private VhdxLogWriter? _log;

    /// <param name="file">The real file (writes go here).</param>
    /// <param name="header">The current header.</param>
    /// <param name="slot">Which copy is current: 0 (header 1) or 1 (header 2).</param>
    public VhdxSession(IImageFile file, VhdxHeader header, int slot)
    {
        _file = file;
        _header = header;
        _currentSlot = slot;
    }

    /// <summary>The current header.</summary>
    public VhdxHeader Header => _header;

    /// <summary>True once the first change has updated the headers (LogGuid set until a clean close).</summary>
    public bool Started { get; private set; }

    /// <summary>
    /// First change of a session: a header update with a new FileWriteGuid and LogGuid (MS-VHDX 2.2.2: FileWriteGuid
    /// changes before the first write), and a new DataWriteGuid before the first change of visible content unless
    /// <paramref name="preserveVersion"/>.
    /// </summary>
    public void BeginChange(bool content, bool preserveVersion)
    {
        bool newVersion = content && !_versionChanged && !preserveVersion;
        if (Started && !newVersion) return;
        var h = _header;
        if (!Started) h = h with { FileWriteGuid = Guid.NewGuid(), LogGuid = Guid.NewGuid() };
        if (newVersion) h = h with { DataWriteGuid = Guid.NewGuid() };
        UpdateHeaders(h);
        if (!Started)
        {
            // A fresh LogGuid makes every older entry in the log invalid, so the writer starts at the log's beginning.
            _log = new VhdxLogWriter(_file, (long)_header.LogOffset, _header.LogLength, _header.LogGuid, 1, 0);
            Started = true;
        }
        if (newVersion) _versionChanged = true;
    }

    /// <summary>After a replay on a read-write open, the log is applied: record that with LogGuid = empty.</summary>
    public void ClearLogGuidAfterReplay() =>
        UpdateHeaders(_header with { FileWriteGuid = Guid.NewGuid(), LogGuid = Guid.Empty });

    /// <summary>
    /// Commits the pending metadata sectors as one log entry, then marks them clean. The caller has flushed the
    /// payload they map first: the log entry must never reach the disk before the data it points at.
    /// </summary>
    public void Commit(VhdxSectorCache sectors)
    {
        var offsets = sectors.DirtyOffsets();
        var writes = new List<VhdxLogWrite>(offsets.Length);
        foreach (long offset in offsets) writes.Add(new VhdxLogWrite(offset, sectors.Get(offset, "log write"), 4096));
        long length = _file.Length;
        _log!.Commit(writes, length, length);
        sectors.MarkClean();
    }

    /// <summary>
    /// Writes both header copies from the current one (new FileWriteGuid, MS-VHDX 2.2.2), in the usual order: an
    /// invalid copy is replaced while the valid one stays until the first write is flushed.
    /// </summary>
    public void RewriteHeaders() => UpdateHeaders(_header with { FileWriteGuid = Guid.NewGuid() });

    /// <summary>Clean close: every log entry is applied (and flushed by the caller), so LogGuid goes back to empty.</summary>
    public void Close() => UpdateHeaders(_header with { LogGuid = Guid.Empty });

    /// <summary>MS-VHDX 2.2.2.1: write the non-current header with the next sequence number, flush, then the other one.</summary>
    private void UpdateHeaders(VhdxHeader template)
    {
        Span<byte> buf = stackalloc byte[HeaderSize];
        ulong seq = _header.SequenceNumber;
        int other = 1 - _currentSlot;
        var first = template with { SequenceNumber = seq + 1 };
        first.Write(buf);
        _file.Write(buf, other == 0 ? Header1Offset : Header2Offset);
        _file.Flush();
        var second = template with { SequenceNumber = seq + 2 };
        second.Write(buf);
        _file.Write(buf, _currentSlot == 0 ? Header1Offset : Header2Offset);
        _file.Flush();
        _header = second;
    }
}
