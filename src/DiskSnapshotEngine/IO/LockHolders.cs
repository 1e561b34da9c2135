namespace DiskSnapshotEngine.IO;

/// <summary>
/// Names the processes holding locks on a file, so that a lock conflict says who holds it ("held by pid 4242
/// (writing: dse merge child.vhdx)", "held by QEMU pid 77 (writing: qemu-system-x86_64 ...)"). flock locks are listed
/// in /proc/locks with the holder's pid. QEMU's OFD locks appear there too but with pid -1 (they belong to an open
/// file, not a process), so their holders are found in /proc/PID/fdinfo, which names each descriptor's inode and
/// lists the locks taken through it. Best effort: what cannot be read (another user's
/// processes when not root, a process that has just exited) is left out, and off Linux the answer is empty.
/// </summary>
internal static class LockHolders
{
    private static readonly char[] s_fieldSeparators = [' ', '\t'];

    /// <summary>"held by ..." naming every process with a lock on the file, or "" when none could be found.</summary>
    public static string Describe(string path)
    {
        if (!OperatingSystem.IsLinux()) return "";
        try
        {
            var node = FileNode.Of(path);
            string key = ProcKey(node);
            var holders = new Dictionary<int, bool>(); // pid -> writing
            foreach (var line in File.ReadLines("/proc/locks"))
            {
                // "1: FLOCK  ADVISORY  WRITE 4242 fd:01:1234567 0 EOF"
                var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                int i = Array.IndexOf(f, "FLOCK");
                if (i < 0 || f.Length < i + 5 || !string.Equals(f[i + 4], key, StringComparison.OrdinalIgnoreCase)) continue;
                if (int.TryParse(f[i + 3], out int pid) && pid > 0) Add(holders, pid, f[i + 2] == "WRITE");
            }
            foreach (var (pid, writing) in OfdHolders(node, key)) Add(holders, pid, writing);
            return holders.Count == 0 ? ""
                : "held by " + string.Join(", ", holders.OrderBy(h => h.Key).Select(h => Name(h.Key, h.Value)));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or Errors.DiskImageException)
        {
            return "";
        }
    }

    private static void Add(Dictionary<int, bool> holders, int pid, bool writing) =>
        holders[pid] = writing || holders.GetValueOrDefault(pid);

    // /proc/locks and fdinfo name a file "MAJ:MIN:INODE" (hex device numbers); glibc's dev_t keeps the major in bits
    // 8-19 and 32-43 and the minor in bits 0-7 and 12-31.
    private static string ProcKey(FileNode node)
    {
        ulong dev = node.Device;
        ulong major = ((dev >> 8) & 0xfff) | ((dev >> 32) & ~0xfffUL);
        ulong minor = (dev & 0xff) | ((dev >> 12) & ~0xffUL);
        return $"{major:x2}:{minor:x2}:{node.Inode}";
    }

    // Processes with an OFD lock on the file; "writing" when one of their locks covers QEMU's WRITE permission byte.
    // Only /proc is read (fdinfo names the inode and lists the locks taken through that descriptor): following the
    // /proc/PID/fd links would touch the files themselves, and a file on a hung mount would hang us.
    private static IEnumerable<(int Pid, bool Writing)> OfdHolders(FileNode node, string key)
    {
        long writeByte = QemuPermissionLocks.HeldByte(QemuPermissionLocks.Permission.Write);
        string inode = $"ino:\t{node.Inode}\n";
        foreach (var dir in SafeEnumerate("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out int pid)) continue;
            bool any = false, writing = false;
            foreach (var fdinfo in SafeEnumerate($"/proc/{pid}/fdinfo"))
            {
                string info;
                try { info = File.ReadAllText(fdinfo); }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException) { continue; }
                if (!info.Contains(inode, StringComparison.Ordinal)) continue;
                // "lock:\t1: OFDLCK ADVISORY  READ -1 fe:00:11657807 100 101"
                foreach (var line in info.Split('\n'))
                {
                    var f = line.Split(s_fieldSeparators, StringSplitOptions.RemoveEmptyEntries);
                    int i = Array.IndexOf(f, "OFDLCK");
                    if (i < 0 || f.Length < i + 7 || !string.Equals(f[i + 4], key, StringComparison.OrdinalIgnoreCase)) continue;
                    any = true;
                    if (long.TryParse(f[i + 5], out long start) && (f[i + 6] == "EOF" || (long.TryParse(f[i + 6], out long end) && end >= writeByte))
                        && start <= writeByte)
                        writing = true;
                }
            }
            if (any) yield return (pid, writing);
        }
    }

    private static IEnumerable<string> SafeEnumerate(string dir)
    {
        try { return Directory.EnumerateFileSystemEntries(dir).ToList(); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return Array.Empty<string>(); }
    }

    private static string Name(int pid, bool writing)
    {
        string command = CommandLine(pid, out string program);
        string who = program.StartsWith("qemu", StringComparison.Ordinal) ? "QEMU pid" : "pid";
        string self = pid == Environment.ProcessId ? "this process, " : "";
        return $"{who} {pid} ({self}{(writing ? "writing" : "reading")}: {command})";
    }

    private static string CommandLine(int pid, out string program)
    {
        program = "";
        try
        {
            var raw = File.ReadAllText($"/proc/{pid}/cmdline").Split('\0', StringSplitOptions.RemoveEmptyEntries);
            // "dotnet /path/dse.dll merge x" reads better as "dse merge x".
            var parts = raw.SkipWhile(a => a.EndsWith("dotnet", StringComparison.Ordinal))
                           .Select((a, idx) => idx == 0 ? Path.GetFileNameWithoutExtension(a) : a).ToList();
            program = parts.FirstOrDefault() ?? "";
            string text = string.Join(' ', parts);
            return text.Length > 120 ? text[..120] + "..." : text;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return "unknown command";
        }
    }
}
