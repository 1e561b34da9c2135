using System.Runtime.InteropServices;

namespace DiskSnapshotEngine.IO;

/// <summary>The libc calls .NET does not expose and more than one place needs (Linux only; callers check the OS).</summary>
internal static class Libc
{
    public const int O_RDONLY = 0x0, O_WRONLY = 0x1, O_CLOEXEC = 0x80000;

    /// <summary>open(2): a file descriptor, or -1 (errno in <see cref="Marshal.GetLastPInvokeError"/>).</summary>
    [DllImport("libc", EntryPoint = "open", SetLastError = true)]
    public static extern int Open([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags);
}
