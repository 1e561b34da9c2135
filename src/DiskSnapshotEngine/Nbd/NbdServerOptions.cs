using System.Text;
using DiskSnapshotEngine.Errors;

namespace DiskSnapshotEngine.Nbd;

/// <summary>How an <see cref="NbdServer"/> listens and what it calls its export.</summary>
public sealed record NbdServerOptions
{
    /// <summary>The IANA port of NBD.</summary>
    public const int DefaultPort = 10809;

    /// <summary>Name of the export; clients asking for the default export ("") get it too.</summary>
    public string ExportName { get; init; } = "";

    /// <summary>Listen on this unix socket path instead of TCP. The file is created, and removed when the server is disposed.</summary>
    public string? SocketPath { get; init; }

    /// <summary>TCP port (0: any free port, see <see cref="NbdServer.Port"/>).</summary>
    public int Port { get; init; } = DefaultPort;

    /// <summary>TCP address to listen on: loopback unless the caller decides otherwise (the protocol has no authentication here).</summary>
    public string BindAddress { get; init; } = "127.0.0.1";

    /// <summary>Time a client has to finish the handshake before it is disconnected (a client that never negotiates holds nothing for long).</summary>
    public TimeSpan HandshakeTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Connections served at once; more are closed on arrival. Bounds memory: each holds at most one request piece buffer.</summary>
    public int MaxConnections { get; init; } = 32;

    /// <summary>Time connections get to finish their current request when the server stops, before they are cut.</summary>
    public TimeSpan StopGrace { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Receives one line for each unexpected event (an internal error on a connection, a refused connection).</summary>
    public Action<string>? Log { get; init; }

    /// <summary>Checks the options.</summary>
    /// <exception cref="DiskImageException">InvalidArgument naming the bad option.</exception>
    internal void Validate()
    {
        if (ExportName.Contains('\0') || Encoding.UTF8.GetByteCount(ExportName) > NbdOptionRequest.MaxString)
            Bad($"the export name must be at most {NbdOptionRequest.MaxString} bytes of UTF-8 without NUL");
        if (Port is < 0 or > 65535) Bad($"port {Port} is outside 0..65535");
        if (MaxConnections < 1) Bad($"at least one connection must be allowed (got {MaxConnections})");
        if (HandshakeTimeout <= TimeSpan.Zero) Bad("the handshake timeout must be positive");
        // sockaddr_un.sun_path holds 108 bytes including the terminating NUL.
        if (SocketPath is { } p && Encoding.UTF8.GetByteCount(Path.GetFullPath(p)) > 107)
            Bad($"the unix socket path is longer than the 107 bytes a socket address holds: {p}");
    }

    private static void Bad(string message) => throw new DiskImageException(ErrorKind.InvalidArgument, message);
}
