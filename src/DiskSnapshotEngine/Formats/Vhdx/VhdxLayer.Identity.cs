using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using static DiskSnapshotEngine.Formats.Vhdx.VhdxConstants;

namespace DiskSnapshotEngine.Formats.Vhdx;

// set-identity: the Virtual Disk ID item, changed in place through the log.
internal sealed partial class VhdxLayer : IIdentityWritable
{
    /// <summary>
    /// MS-VHDX 2.6.2.5: a new Virtual Disk ID (page 83 data), written through the log so a crash keeps the old id or
    /// the new one; the session's first content change gives a new DataWriteGuid before it (the disk is another one now).
    /// </summary>
    public void SetIdentity(Guid id)
    {
        if (!IsWritable) ThrowHelper.ReadOnly(Path, "set the identity");
        lock (_sync)
        {
            int index = _metadata.IndexOf(VirtualDiskIdItem, "Virtual Disk ID");
            BeginChange(content: true);
            Span<byte> bytes = stackalloc byte[16];
            id.TryWriteBytes(bytes);
            _metadata.Overwrite(index, bytes);
            CommitPending();
            _file.Flush();
            _virtualDiskId = id;
        }
    }
}
