using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Nbd;

namespace DiskSnapshotEngine.Tests.Nbd;

/// <summary>An image served in-process on a unix socket for the length of a test; disposing stops the server and flushes the chain.</summary>
public sealed class ServedImage : IDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _run;
    private readonly List<string> _log = new();

    public ServedImage(string image, string? socketPath, bool writable, Func<NbdServerOptions, NbdServerOptions>? configure = null)
    {
        Chain = DiskImage.Open(image, writable ? OpenOptions.ReadWrite : OpenOptions.ReadOnly);
        var options = new NbdServerOptions
        {
            SocketPath = socketPath,
            Log = m => { lock (_log) _log.Add(m); },
        };
        try
        {
            Server = NbdServer.Listen(Chain, configure?.Invoke(options) ?? options);
        }
        catch
        {
            Chain.Dispose();
            throw;
        }
        _run = Server.RunAsync(_stop.Token);
    }

    public DiskChain Chain { get; }
    public NbdServer Server { get; }
    public string? SocketPath => Server.SocketPath;

    /// <summary>What the server logged (internal errors, refused connections).</summary>
    public IReadOnlyList<string> Log
    {
        get { lock (_log) return _log.ToArray(); }
    }

    public NbdTestClient Connect() => SocketPath is { } p ? NbdTestClient.Unix(p) : NbdTestClient.Tcp(Server.Port!.Value);

    /// <summary>Stops the server (letting connections finish their request) and waits for it.</summary>
    public void Stop()
    {
        if (_stop.IsCancellationRequested) return;
        _stop.Cancel();
        if (!_run.Wait(TimeSpan.FromSeconds(60))) throw new TimeoutException("the NBD server did not stop");
    }

    public void Dispose()
    {
        try { Stop(); }
        finally
        {
            Server.Dispose();
            Chain.Dispose();
            _stop.Dispose();
        }
        Assert.True(Server.Faults == 0, "the server had internal errors: " + string.Join("; ", Log));
    }
}
