namespace DiskSnapshotEngine.Formats.Vdi;

// VDICore.h VDIIMAGETYPE: the u32Type header field.
internal enum VdiImageType : uint
{
    /// <summary>VDI_IMAGE_TYPE_NORMAL: dynamically growing base image.</summary>
    Normal = 1,
    /// <summary>VDI_IMAGE_TYPE_FIXED: preallocated base image.</summary>
    Fixed = 2,
    /// <summary>VDI_IMAGE_TYPE_UNDO: old undo image; read like a differencing image.</summary>
    Undo = 3,
    /// <summary>VDI_IMAGE_TYPE_DIFF: differencing image.</summary>
    Diff = 4,
}
