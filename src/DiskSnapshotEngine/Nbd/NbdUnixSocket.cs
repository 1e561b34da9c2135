using System.Net.Sockets;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Nbd;

/// <summary>
/// The listening unix socket of a server. A socket left behind by a killed server is replaced; a live one or any other
/// file is not. The runtime removes the socket file when the socket that bound it is disposed.
/// </summary>
internal static class NbdUnixSocket
{
    /// <summary>Binds and listens at <paramref name="path"/>.</summary>
    /// <exception cref="DiskImageException">AlreadyExists when another server listens there or the path is not a socket; Io.</exception>
    public static Socket Bind(string path)
    {
        if (File.Exists(path) || Directory.Exists(path)) RemoveStale(path);
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            socket.Bind(new UnixDomainSocketEndPoint(path));
            socket.Listen(16);
            return socket;
        }
        catch (SocketException e)
        {
            socket.Dispose();
            var kind = e.SocketErrorCode == SocketError.AddressAlreadyInUse ? ErrorKind.AlreadyExists : ErrorKind.Io;
            throw new DiskImageException(kind, $"cannot listen on the unix socket: {e.Message}", path, inner: e);
        }
    }

    private static void RemoveStale(string path)
    {
        if (!FileNode.IsSocket(path))
            throw new DiskImageException(ErrorKind.AlreadyExists, "the socket path exists and is not a socket", path);
        using var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            probe.Connect(new UnixDomainSocketEndPoint(path));
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionRefused)
        {
            // Nobody listens: a server that was killed left it behind.
            File.Delete(path);
            return;
        }
        throw new DiskImageException(ErrorKind.AlreadyExists, "another server is listening on this unix socket", path);
    }
}
