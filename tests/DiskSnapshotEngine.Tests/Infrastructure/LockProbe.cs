namespace DiskSnapshotEngine.Tests.Infrastructure;

/// <summary>
/// Whether another process holds a lock on a file, asked the way a second process would: flock(1) from util-linux
/// takes the same kind of lock (flock(2)) that the engine takes, and fails at once when it cannot.
/// </summary>
public static class LockProbe
{
    /// <summary>True when an exclusive lock cannot be taken right now.</summary>
    public static bool IsHeldElsewhere(string path) =>
        ExternalTool.Run("flock", "--nonblock", "--exclusive", path, "true").ExitCode == 1;

    /// <summary>Waits (up to <paramref name="seconds"/>) until some process holds a lock on the file, e.g. a dse process has opened the image.</summary>
    public static void WaitUntilHeld(string path, int seconds = 30)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (DateTime.UtcNow < deadline)
        {
            if (IsHeldElsewhere(path)) return;
            Thread.Sleep(20);
        }
        throw new TimeoutException($"nothing locked {path}");
    }
}
