using System.Buffers;
using System.Net;
using System.Net.Sockets;
using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;

namespace DiskSnapshotEngine.Nbd;

/// <summary>
/// Serves an opened chain as one NBD export (the NetworkBlockDevice/nbd protocol, fixed newstyle, structured replies,
/// base:allocation) on a unix socket or a TCP port. The server knows nothing of formats: it is a protocol loop over the
/// chain's read, write, map and flush. Each client gets a thread; reads from several clients run concurrently, writes
/// are serialized. The caller owns the chain, keeps it open while the server runs, and flushes it afterwards.
/// </summary>
public sealed class NbdServer : IDisposable
{
    private readonly NbdExport _export;
    private readonly NbdServerOptions _options;
    private readonly Socket _listener;
    private readonly ArrayPool<byte> _pool;
    private readonly Dictionary<NbdConnection, TaskCompletionSource> _connections = new();
    private int _faults;
    private bool _disposed;

    private NbdServer(DiskChain chain, NbdServerOptions options, Socket listener)
    {
        _export = new NbdExport(chain, options.ExportName);
        _options = options;
        _listener = listener;
        // One piece buffer per connection at most; the pool keeps as many as can be in use at once.
        _pool = ArrayPool<byte>.Create(NbdRequestRules.PieceSize, options.MaxConnections);
        Port = listener.LocalEndPoint is IPEndPoint ip ? ip.Port : null;
        Uri = options.SocketPath is { } socket
            ? $"nbd+unix:///{System.Uri.EscapeDataString(options.ExportName)}?socket={EscapePath(Path.GetFullPath(socket))}"
            : $"nbd://{HostPart(options.BindAddress)}:{Port}/{System.Uri.EscapeDataString(options.ExportName)}";
    }

    /// <summary>The NBD URI clients connect to (nbd+unix:///NAME?socket=PATH or nbd://HOST:PORT/NAME).</summary>
    public string Uri { get; }

    /// <summary>The TCP port listened on (the one chosen when port 0 was asked for); null for a unix socket.</summary>
    public int? Port { get; }

    /// <summary>Full path of the unix socket; null for TCP.</summary>
    public string? SocketPath => _options.SocketPath is { } p ? Path.GetFullPath(p) : null;

    /// <summary>True when the export refuses writes (the chain was opened read-only).</summary>
    public bool ReadOnly => _export.Info.ReadOnly;

    /// <summary>Size of the export in bytes.</summary>
    public long Size => _export.Info.Size;

    /// <summary>Connections ended by an internal error (a bug, also reported through <see cref="NbdServerOptions.Log"/>).</summary>
    public int Faults => Volatile.Read(ref _faults);

    /// <summary>Connections being served now.</summary>
    public int ConnectionCount
    {
        get { lock (_connections) return _connections.Count; }
    }

    /// <summary>Binds the socket the options name; clients are accepted once <see cref="RunAsync"/> runs.</summary>
    /// <exception cref="DiskImageException">InvalidArgument (bad options), AlreadyExists (the socket path exists and is not a stale socket, or the port is taken), Io.</exception>
    public static NbdServer Listen(DiskChain chain, NbdServerOptions options)
    {
        options.Validate();
        if (options.SocketPath is { } path)
        {
            return new NbdServer(chain, options, NbdUnixSocket.Bind(Path.GetFullPath(path)));
        }
        return new NbdServer(chain, options, BindTcp(options));
    }

    /// <summary>
    /// Accepts and serves clients until <paramref name="cancel"/> is cancelled, then stops accepting, lets every
    /// connection finish the request it is serving (cutting those that do not within the grace time) and returns.
    /// </summary>
    public async Task RunAsync(CancellationToken cancel)
    {
        try
        {
            while (!cancel.IsCancellationRequested)
            {
                Socket client;
                try { client = await _listener.AcceptAsync(cancel).ConfigureAwait(false); }
                catch (OperationCanceledException) { break; }
                catch (SocketException e)
                {
                    // Out of file descriptors and the like: the listener itself is fine, try again shortly.
                    _options.Log?.Invoke($"accepting an NBD client failed: {e.Message}");
                    await Task.Delay(100, CancellationToken.None).ConfigureAwait(false);
                    continue;
                }
                Admit(client);
            }
        }
        finally
        {
            _listener.Dispose();
            await StopConnectionsAsync().ConfigureAwait(false);
        }
    }

    private void Admit(Socket client)
    {
        if (client.AddressFamily != AddressFamily.Unix) client.NoDelay = true; // proto.md: disable Nagle for TCP
        var connection = new NbdConnection(client, _export, _pool, _options.HandshakeTimeout, Fault);
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_connections)
        {
            if (_connections.Count >= _options.MaxConnections)
            {
                _options.Log?.Invoke($"refused an NBD client: {_options.MaxConnections} connections are being served");
                client.Dispose();
                return;
            }
            _connections.Add(connection, done);
        }
        var thread = new Thread(() =>
        {
            try { connection.Run(); }
            finally
            {
                lock (_connections) _connections.Remove(connection);
                done.SetResult();
            }
        })
        { IsBackground = true, Name = "nbd client" };
        thread.Start();
    }

    private void Fault(string message)
    {
        Interlocked.Increment(ref _faults);
        _options.Log?.Invoke(message);
    }

    private async Task StopConnectionsAsync()
    {
        KeyValuePair<NbdConnection, TaskCompletionSource>[] running;
        lock (_connections) running = _connections.ToArray();
        foreach (var (c, _) in running) c.Stop();
        var all = Task.WhenAll(running.Select(r => r.Value.Task));
        try { await all.WaitAsync(_options.StopGrace).ConfigureAwait(false); }
        catch (TimeoutException)
        {
            foreach (var (c, _) in running) c.Abort();
            try { await all.WaitAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false); }
            catch (TimeoutException) { _options.Log?.Invoke("an NBD connection did not end after being cut"); }
        }
    }

    /// <summary>Closes the listener (which removes the unix socket file) and cuts any connection left. Call after <see cref="RunAsync"/> has returned.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _listener.Dispose();
        lock (_connections)
            foreach (var c in _connections.Keys) c.Abort();
    }

    private static Socket BindTcp(NbdServerOptions options)
    {
        if (!IPAddress.TryParse(options.BindAddress, out var address))
        {
            try { address = Dns.GetHostAddresses(options.BindAddress).First(); }
            catch (Exception e) when (e is SocketException or InvalidOperationException or ArgumentException)
            {
                throw new DiskImageException(ErrorKind.InvalidArgument, $"cannot resolve the bind address '{options.BindAddress}'");
            }
        }
        var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            // A restarted server must not wait for the previous one's connections to leave TIME_WAIT.
            socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            socket.Bind(new IPEndPoint(address, options.Port));
            socket.Listen(16);
            return socket;
        }
        catch (SocketException e)
        {
            socket.Dispose();
            var kind = e.SocketErrorCode == SocketError.AddressAlreadyInUse ? ErrorKind.AlreadyExists : ErrorKind.Io;
            throw new DiskImageException(kind, $"cannot listen on {HostPart(address.ToString())}:{options.Port}: {e.Message}", inner: e);
        }
    }

    private static string HostPart(string address) =>
        IPAddress.TryParse(address, out var ip) && ip.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{address}]" : address;

    // The socket path goes in a URI query: keep '/' readable, escape what a URI parser would split on.
    private static string EscapePath(string path) => string.Join('/', path.Split('/').Select(System.Uri.EscapeDataString));
}
