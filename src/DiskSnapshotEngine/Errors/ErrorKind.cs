namespace DiskSnapshotEngine.Errors;

/// <summary>
/// What went wrong, independent of where. The CLI maps each kind to its own exit code
/// (see <c>ExitCodes</c> in the CLI and the README table), so scripts can branch on it.
/// </summary>
public enum ErrorKind
{
    /// <summary>The file is not an image of the expected format (bad signature, unknown version).</summary>
    InvalidFormat,
    /// <summary>The file claims to be a known format but a structure in it is inconsistent (bad CRC, entry out of range).</summary>
    CorruptImage,
    /// <summary>A valid image uses a feature this engine does not implement (unknown required metadata item).</summary>
    Unsupported,
    /// <summary>A request addresses bytes outside the virtual disk.</summary>
    OutOfBounds,
    /// <summary>An operating-system I/O error other than the specific kinds below.</summary>
    Io,
    /// <summary>A named file does not exist or is not a regular file (FIFO, device, directory, symlink loop).</summary>
    FileNotFound,
    /// <summary>A differencing image's parent could not be found at any location it names or that was searched.</summary>
    ParentNotFound,
    /// <summary>A parent was found but its linkage identifier does not match what the child recorded.</summary>
    ParentMismatch,
    /// <summary>The parent chain loops back on itself or is deeper than the engine's limit.</summary>
    ChainInvalid,
    /// <summary>Another process holds a conflicting lock on the file.</summary>
    Locked,
    /// <summary>The file system ran out of space.</summary>
    DiskFull,
    /// <summary>The caller's arguments are invalid (bad size, bad option combination).</summary>
    InvalidArgument,
    /// <summary>The operation was cancelled (Ctrl-C, SIGTERM, a cancellation token).</summary>
    Cancelled,
    /// <summary>A write was attempted on an image opened read-only, or one that must stay immutable (it has children).</summary>
    ReadOnly,
    /// <summary>A file the operation would create already exists.</summary>
    AlreadyExists,
    /// <summary>An external tool (VBoxManage, virsh, PowerShell) is missing or failed.</summary>
    ExternalTool,
}
