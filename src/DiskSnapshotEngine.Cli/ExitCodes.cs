using DiskSnapshotEngine.Errors;

namespace DiskSnapshotEngine.Cli;

/// <summary>
/// The process exit codes of <c>dse</c>, one per outcome so scripts can branch on them. The README carries the same
/// table; <c>ExitCodeTests</c> checks that every <see cref="ErrorKind"/> has its own code.
/// </summary>
internal static class ExitCodes
{
    public const int Ok = 0;
    /// <summary>The command ran and its answer is "no": images differ (compare), problems found (check, demo).</summary>
    public const int ProblemsFound = 1;
    /// <summary>Bad command line: unknown verb or option, missing argument, bad SIZE, options that exclude each other.</summary>
    public const int Usage = 2;
    public const int InvalidFormat = 3;
    public const int CorruptImage = 4;
    public const int Unsupported = 5;
    public const int OutOfBounds = 6;
    public const int Io = 7;
    public const int FileNotFound = 8;
    public const int ParentNotFound = 9;
    public const int ParentMismatch = 10;
    public const int ChainInvalid = 11;
    public const int Locked = 12;
    public const int DiskFull = 13;
    public const int InvalidArgument = 14;
    public const int ReadOnly = 15;
    public const int AlreadyExists = 16;
    public const int ExternalTool = 17;
    /// <summary>
    /// The disk operation succeeded but the VirtualBox machine file named with <c>--vm</c> could not be updated: the
    /// disk changed, the file still describes it as before (not an <see cref="ErrorKind"/>: it is two outcomes at once).
    /// </summary>
    public const int VmFileNotUpdated = 18;
    /// <summary>A bug: an exception that is not a <see cref="DiskImageException"/> (EX_SOFTWARE of sysexits.h).</summary>
    public const int Internal = 70;
    /// <summary>Stopped by SIGINT (Ctrl-C), or cancelled otherwise: 128 + 2, as shells report it.</summary>
    public const int Interrupted = 130;
    /// <summary>Stopped by SIGTERM: 128 + 15.</summary>
    public const int Terminated = 143;

    /// <summary>The exit code of an error kind.</summary>
    public static int ForKind(ErrorKind kind) => kind switch
    {
        ErrorKind.InvalidFormat => InvalidFormat,
        ErrorKind.CorruptImage => CorruptImage,
        ErrorKind.Unsupported => Unsupported,
        ErrorKind.OutOfBounds => OutOfBounds,
        ErrorKind.Io => Io,
        ErrorKind.FileNotFound => FileNotFound,
        ErrorKind.ParentNotFound => ParentNotFound,
        ErrorKind.ParentMismatch => ParentMismatch,
        ErrorKind.ChainInvalid => ChainInvalid,
        ErrorKind.Locked => Locked,
        ErrorKind.DiskFull => DiskFull,
        ErrorKind.InvalidArgument => InvalidArgument,
        ErrorKind.Cancelled => Interrupted,
        ErrorKind.ReadOnly => ReadOnly,
        ErrorKind.AlreadyExists => AlreadyExists,
        ErrorKind.ExternalTool => ExternalTool,
        // A kind added to the library without a code here is a bug; ExitCodeTests catches it.
        _ => Internal,
    };
}
