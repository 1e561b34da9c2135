using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using static DiskSnapshotEngine.Formats.Vhdx.VhdxConstants;

namespace DiskSnapshotEngine.Formats.Vhdx;

public sealed partial class VhdxLayer
{
    /// <summary>
    /// MS-VHDX 2.6.2.5: a new Virtual Disk ID (page 83 data), written through the log so a crash keeps the old id or
    /// the new one; the session's header update gives a new DataWriteGuid first (the disk is a different one now).
    /// </summary>
    public void SetIdentity(Guid id)
    {
        if (!IsWritable) ThrowHelper.ReadOnly(Path, "set the identity");
        lock (_sync)
        {
            int index = _metadataTable.Entries.FindIndex(e => e.ItemId == VirtualDiskIdItem && !e.IsUser);
            if (index < 0) ThrowHelper.Corrupt(Path, "metadata table", null, "the Virtual Disk ID item is missing");
            var entry = _metadataTable.Entries[index];
            BeginChange(content: true);
            Span<byte> bytes = stackalloc byte[16];
            id.TryWriteBytes(bytes);
            PatchMetadata(entry.Offset, bytes);
            CommitPending();
            _file.Flush();
            _virtualDiskId = id;
        }
    }
}
