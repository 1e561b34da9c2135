using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;
using static DiskSnapshotEngine.Formats.Vhdx.VhdxConstants;

namespace DiskSnapshotEngine.Formats.Vhdx;

// The session side of a VHDX layer: the first change of a session, log commits, and the metadata items it rewrites
// (parent locator, dse seal item), each change one atomic log entry.
internal sealed partial class VhdxLayer
{
    private void BeginChange(bool content)
    {
        if (content) VerifyTable();
        _session.BeginChange(content, PreserveVersionOnWrite);
    }

    // A BAT with an entry check calls an error (overlap, outside the file) is never written through: a change could
    // expose or move another block's data. Checked once per open.
    private void VerifyTable()
    {
        if (_tableVerified) return;
        BlockTableGuard.Refuse(this, "BAT entry");
        _tableVerified = true;
    }

    /// <summary>After a replay on a read-write open, the log is applied: record that with LogGuid = empty.</summary>
    internal void ClearLogGuidAfterReplay() => _session.ClearLogGuidAfterReplay();

    private void CommitPending()
    {
        if (_sectors.DirtyCount == 0) return;
        // Payload first: the log entry that maps new blocks must never reach the disk before their data.
        _file.Flush();
        _payloadUnflushed = false;
        _session.Commit(_sectors);
    }

    public void Flush()
    {
        if (!IsWritable) return;
        lock (_sync)
        {
            CommitPending();
            if (_payloadUnflushed || _session.Started) _file.Flush();
            _payloadUnflushed = false;
        }
    }

    // ---------------------------------------------------------------- parent

    public void SetParent(ParentDescriptor parent)
    {
        if (!IsWritable) ThrowHelper.ReadOnly(Path, "set the parent");
        if (!IsDifferencing)
            throw new DiskImageException(ErrorKind.Unsupported, "the image has no parent (HasParent is not set)", Path, "file parameters");
        if (parent.Format != ImageFormat.Vhdx)
            throw new DiskImageException(ErrorKind.Unsupported, $"a differencing VHDX's parent must be a VHDX (got {parent.Format.Name()})", Path, "parent locator");
        ChainRules.CheckCompatible(Path, _logicalSectorSize, parent.Path, parent.LogicalSectorSize);
        var locator = VhdxParentLocator.For(Path, parent);
        var bytes = locator.ToBytes();
        lock (_sync)
        {
            int index = _metadata.Table.Entries.FindIndex(e => e.ItemId == ParentLocatorItem && !e.IsUser);
            // Placed before anything changes: a locator that does not fit leaves the file as it was.
            uint offset = _metadata.PlaceReplacement(index, bytes.Length, "parent locator");
            BeginChange(content: false);
            _metadata.Replace(index, offset, bytes);
            _locator = locator;
            _parentLink = locator.ToParentLink(Path);
            CommitPending();
        }
    }

    /// <summary>Records the seal in the dse seal item (a user metadata item) through the log; DataWriteGuid is untouched.</summary>
    public void SetSeal(SealReasons seal, SoleChild soleChild = default)
    {
        if (!IsWritable) ThrowHelper.ReadOnly(Path, "change the seal");
        if (seal == SealReasons.None || soleChild.Id == Guid.Empty) soleChild = SoleChild.Unknown; // the item holds whole ids only
        var value = SealValue.ToBytes(seal, soleChild);
        lock (_sync)
        {
            if (seal == _seal && soleChild == _soleChild) return;
            int index = _metadata.Table.Entries.FindIndex(e => e.ItemId == DseSealItem && e.IsUser);
            // Placed before anything changes: an item that does not fit leaves the file as it was.
            uint offset = index >= 0 ? _metadata.PlaceReplacement(index, value.Length, "dse seal item") : _metadata.PlaceNew(value.Length, "dse seal item");
            BeginChange(content: false);
            if (index >= 0) _metadata.Replace(index, offset, value);
            else _metadata.Add(new VhdxMetadataTableEntry(DseSealItem, offset, (uint)value.Length, IsUser: true, IsVirtualDisk: false, IsRequired: false), value);
            CommitPending();
            _seal = seal;
            _soleChild = soleChild;
        }
    }
}
