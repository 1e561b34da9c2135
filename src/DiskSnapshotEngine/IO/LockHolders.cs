namespace DiskSnapshotEngine.IO;

/// <summary>
/// Names the processes holding a flock on a file, so a lock conflict can say which operation holds it
/// ("held by pid 4242: dse merge child.vhdx"). Linux exposes every lock in /proc/locks with the holder's pid and the
/// file's device and inode; the holder's command line comes from /proc/PID/cmdline. Best effort: an empty answer
/// elsewhere or when the holder has gone.
/// </summary>
internal static class LockHolders
{
    public static string Describe(string path)
    {
        if (!OperatingSystem.IsLinux()) return "";
        try
        {
            var node = FileNode.Of(path);
            ulong dev = node.Device;
            // glibc's encoding of dev_t: major in bits 8-19 and 32-43, minor in bits 0-7 and 12-31.
            ulong major = ((dev >> 8) & 0xfff) | ((dev >> 32) & ~0xfffUL);
            ulong minor = (dev & 0xff) | ((dev >> 12) & ~0xffUL);
            string wanted = $"{major:x2}:{minor:x2}:{node.Inode}";
            var holders = new List<string>();
            foreach (var line in File.ReadLines("/proc/locks"))
            {
                // "1: FLOCK  ADVISORY  WRITE 4242 fd:01:1234567 0 EOF"
                var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                int i = Array.IndexOf(f, "FLOCK");
                if (i < 0 || f.Length < i + 5 || !string.Equals(f[i + 4], wanted, StringComparison.OrdinalIgnoreCase)) continue;
                if (!int.TryParse(f[i + 3], out int pid) || pid == Environment.ProcessId) continue;
                string mode = f[i + 2] == "WRITE" ? "writing" : "reading";
                holders.Add($"pid {pid} ({mode}: {CommandLine(pid)})");
            }
            return holders.Count == 0 ? "" : "held by " + string.Join(", ", holders.Distinct());
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or Errors.DiskImageException)
        {
            return "";
        }
    }

    private static string CommandLine(int pid)
    {
        try
        {
            var raw = File.ReadAllText($"/proc/{pid}/cmdline").Split('\0', StringSplitOptions.RemoveEmptyEntries);
            // "dotnet /path/dse.dll merge x" reads better as "dse merge x".
            var parts = raw.SkipWhile(a => a.EndsWith("dotnet", StringComparison.Ordinal))
                           .Select((a, idx) => idx == 0 ? Path.GetFileNameWithoutExtension(a) : a);
            string text = string.Join(' ', parts);
            return text.Length > 120 ? text[..120] + "..." : text;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return "unknown command";
        }
    }
}
