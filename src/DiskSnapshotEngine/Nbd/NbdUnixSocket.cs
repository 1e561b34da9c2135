using System.Net.Sockets;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Nbd;

/// <summary>
/// The listening unix socket of a server: created at a path, and removed again at exit only while that path is still
/// the socket this server made. A socket left behind by a killed server is replaced; a live one or any other file is not.
/// </summary>
internal static class NbdUnixSocket
{
    /// <summary>Binds and listens at <paramref name="path"/>; returns the socket and the file's timestamp (its identity for removal).</summary>
    /// <exception cref="DiskImageException">AlreadyExists when another server listens there or the path is not a socket; Io.</exception>
    public static (Socket Socket, DateTime Stamp) Bind(string path)
    {
        if (File.Exists(path) || Directory.Exists(path)) RemoveStale(path);
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            socket.Bind(new UnixDomainSocketEndPoint(path));
            socket.Listen(16);
            return (socket, File.GetLastWriteTimeUtc(path));
        }
        catch (SocketException e)
        {
            socket.Dispose();
            var kind = e.SocketErrorCode == SocketError.AddressAlreadyInUse ? ErrorKind.AlreadyExists : ErrorKind.Io;
            throw new DiskImageException(kind, $"cannot listen on the unix socket: {e.Message}", path, inner: e);
        }
    }

    /// <summary>Deletes the socket file if it is still the one created at <paramref name="stamp"/>.</summary>
    public static void RemoveIfOurs(string path, DateTime stamp)
    {
        try
        {
            if (FileNode.IsSocket(path) && File.GetLastWriteTimeUtc(path) == stamp) File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
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
