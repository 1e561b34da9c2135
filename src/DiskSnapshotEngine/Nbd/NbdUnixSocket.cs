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
    /// <exception cref="DiskImageException">AlreadyExists when another server listens there or the path is not a socket;
    /// FileNotFound when its folder does not exist; ReadOnly when this user may not create files there; Io.</exception>
    public static Socket Bind(string path)
    {
        // bind(2) says ENOENT as "Cannot assign requested address" and EACCES as a bare "Permission denied" (exit 7):
        // the folder is named instead, with the exit codes create gives for the same folders.
        // Every error names the full path, as every other error does, whatever the caller typed.
        path = Path.GetFullPath(path);
        string folder = Path.GetDirectoryName(path) ?? "/";
        if (!Directory.Exists(folder))
            throw new DiskImageException(ErrorKind.FileNotFound, $"cannot listen on the unix socket: its folder {folder} does not exist", path);
        FolderAccess.Require(path, "listen on the unix socket");
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
