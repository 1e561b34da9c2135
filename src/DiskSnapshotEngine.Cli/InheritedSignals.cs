using System.Runtime.InteropServices;

namespace DiskSnapshotEngine.Cli;

/// <summary>
/// The verbs that run until they are stopped (<c>serve</c>, <c>mount</c>) stop on SIGINT even when it was inherited as
/// ignored. A non-interactive shell starts a background job (<c>dse serve IMG &amp;</c> in a script) with SIGINT and
/// SIGQUIT ignored, and .NET keeps an inherited SIG_IGN (it registers no handler for it), so without this `kill -INT`
/// would do nothing. qemu-nbd and qemu-storage-daemon install their SIGINT handler whatever they inherited; users expect
/// the same of a server. The other verbs keep the shell's choice: a background clone in a script stays immune to the
/// Ctrl-C meant for the script's foreground command.
/// </summary>
internal static partial class InheritedSignals
{
    private const int SigInt = 2;
    private static readonly nint SigDfl = 0;

    /// <summary>Resets an inherited ignored SIGINT to the default for a server verb; call before registering handlers.</summary>
    public static void RestoreForServers(string[] args)
    {
        // /proc/self/status and this signal number are Linux's; elsewhere the runtime's own handling stands.
        if (!OperatingSystem.IsLinux()) return;
        if (args.Length == 0 || args[0] is not ("serve" or "mount") || !IsIgnored(SigInt)) return;
        // Only an ignored disposition is replaced, so a handler the runtime installed at start-up is never clobbered.
        signal(SigInt, SigDfl);
    }

    /// <summary>True when <paramref name="signalNumber"/> is ignored by this process (the SigIgn mask of /proc/self/status).</summary>
    internal static bool IsIgnored(int signalNumber)
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
        {
            if (!line.StartsWith("SigIgn:", StringComparison.Ordinal)) continue;
            ulong mask = Convert.ToUInt64(line["SigIgn:".Length..].Trim(), 16);
            return (mask >> (signalNumber - 1) & 1) != 0;
        }
        return false;
    }

    [LibraryImport("libc")]
    private static partial nint signal(int signalNumber, nint handler);
}
