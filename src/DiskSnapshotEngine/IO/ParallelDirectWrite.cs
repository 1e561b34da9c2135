using System.Runtime.ExceptionServices;
using Microsoft.Win32.SafeHandles;

namespace DiskSnapshotEngine.IO;

/// <summary>
/// Writes one large O_DIRECT buffer as a few parts issued at once (one on the calling thread, the others on helper
/// threads), and returns only when every part is on the device. A single synchronous direct write leaves the device
/// idle while the kernel waits out its last requests and the caller comes back with the next buffer; two requests in
/// flight keep it busy. To the caller this is still one synchronous write: nothing is reordered against the writes
/// before or after it, so the drivers' crash ordering (data before the metadata that maps it) holds unchanged.
/// </summary>
internal static class ParallelDirectWrite
{
    /// <summary>Parts below this size are not worth a second request (nor a thread hop).</summary>
    public const int MinimumPart = 512 << 10;

    private const int Alignment = 4096;

    /// <summary>
    /// Requests in flight per direct write: DSE_DIRECT_WRITE_STREAMS (1 to 8; 1 writes every buffer in one request),
    /// 2 by default.
    /// </summary>
    public static int Streams { get; } =
        int.TryParse(Environment.GetEnvironmentVariable("DSE_DIRECT_WRITE_STREAMS"), out int n) ? Math.Clamp(n, 1, 8) : 2;

    /// <summary>
    /// Writes <paramref name="length"/> bytes at <paramref name="data"/> (pinned and 4 KiB aligned, as direct I/O
    /// needs; the caller keeps it pinned for the call) to <paramref name="handle"/> at <paramref name="offset"/>.
    /// </summary>
    /// <returns>The number of requests the write went out as.</returns>
    /// <exception cref="IOException">The first part that failed (every part has finished by then).</exception>
    public static unsafe int Write(SafeFileHandle handle, byte* data, int length, long offset, int streams)
    {
        int parts = Math.Min(streams, length / MinimumPart);
        if (parts <= 1)
        {
            RandomAccess.Write(handle, new ReadOnlySpan<byte>(data, length), offset);
            return 1;
        }
        int part = length / parts / Alignment * Alignment;
        var others = new Part[parts - 1];
        for (int i = 1; i < parts; i++)
        {
            int start = i * part;
            others[i - 1] = new Part(handle, data + start, i == parts - 1 ? length - start : part, offset + start);
        }
        Hand(others);
        Exception? error = null;
        try { RandomAccess.Write(handle, new ReadOnlySpan<byte>(data, part), offset); }
        catch (Exception e) { error = e; }
        // The buffer may be reused once this returns, so every part must have finished, failed or not.
        foreach (var p in others)
        {
            p.RunOrWait();
            error ??= p.Error;
        }
        if (error is not null) ExceptionDispatchInfo.Throw(error);
        return parts;
    }

    // Dedicated helper threads that block without spinning: the thread pool's workers spin (sched_yield) for a while
    // after each item, which cost more CPU than the writes themselves on a small machine.
    private static readonly Queue<Part> s_queue = new();
    private static readonly object s_gate = new();
    private static int s_helpers;

    private static void Hand(Part[] parts)
    {
        lock (s_gate)
        {
            foreach (var p in parts) s_queue.Enqueue(p);
            for (; s_helpers < parts.Length; s_helpers++)
                new Thread(Help) { IsBackground = true, Name = "dse direct write" }.Start();
            Monitor.PulseAll(s_gate);
        }
    }

    private static void Help()
    {
        while (true)
        {
            Part p;
            lock (s_gate)
            {
                while (s_queue.Count == 0) Monitor.Wait(s_gate);
                p = s_queue.Dequeue();
            }
            p.Execute();
        }
    }

    /// <summary>
    /// One part, run by whichever comes first: a helper thread, or the caller once its own part is done (so busy
    /// helpers delay nothing and can never leave the caller waiting for a thread that does not come).
    /// </summary>
    private sealed unsafe class Part(SafeFileHandle handle, byte* data, int length, long offset)
    {
        private int _claimed;
        private bool _done;

        public Exception? Error { get; private set; }

        public void Execute()
        {
            if (Interlocked.Exchange(ref _claimed, 1) == 0) Run();
        }

        public void RunOrWait()
        {
            if (Interlocked.Exchange(ref _claimed, 1) == 0)
            {
                Run();
                return;
            }
            lock (this)
                while (!_done) Monitor.Wait(this);
        }

        private void Run()
        {
            try { RandomAccess.Write(handle, new ReadOnlySpan<byte>(data, length), offset); }
            catch (Exception e) { Error = e; }
            lock (this)
            {
                _done = true;
                Monitor.PulseAll(this);
            }
        }
    }
}
