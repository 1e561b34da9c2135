namespace DiskSnapshotEngine.Block;

/// <summary>A layer whose disk id can be replaced in place (<c>dse set-identity</c>); formats without a disk id lack it.</summary>
public interface IIdentityWritable
{
    /// <summary>
    /// Gives the image the disk id <paramref name="id"/> and a new content version, durably and atomically (the old
    /// identity or the new one after a crash). Content and parent link are unchanged.
    /// </summary>
    /// <exception cref="Errors.DiskImageException">ReadOnly, Io.</exception>
    void SetIdentity(Guid id);
}
