namespace DiskSnapshotEngine.Block;

/// <summary>The on-disk formats the engine reads and writes.</summary>
public enum ImageFormat
{
    /// <summary>A flat file holding the virtual disk byte for byte.</summary>
    Raw,
    /// <summary>Hyper-V VHDX (MS-VHDX).</summary>
    Vhdx,
    /// <summary>VirtualBox VDI.</summary>
    Vdi,
    /// <summary>QEMU qcow2 (versions 2 and 3).</summary>
    Qcow2,
    /// <summary>Microsoft VHD (Virtual Hard Disk Image Format Specification): Hyper-V, Virtual PC, Azure.</summary>
    Vhd,
}

/// <summary>How an image stores its blocks.</summary>
public enum ImageType
{
    /// <summary>Blocks allocated on first write (VHDX dynamic, VDI normal).</summary>
    Dynamic,
    /// <summary>Every block allocated at creation; the file never grows.</summary>
    Fixed,
    /// <summary>A child that reads what it does not hold from its parent.</summary>
    Differencing,
}
