using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Nbd;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Nbd;

/// <summary>The unix socket a server listens on, bound directly: its errors name the full path whatever was typed.</summary>
public class NbdUnixSocketTests
{
    [Fact]
    public void A_relative_socket_path_in_a_missing_folder_is_named_in_full()
    {
        using var dir = new TempDirectory("nbd-socket-relative");
        string full = Path.Combine(dir.Path, "no-such-folder", "s.sock");
        string relative = Path.GetRelativePath(Environment.CurrentDirectory, full);
        Assert.NotEqual(full, relative);

        var e = Assert.Throws<DiskImageException>(() => NbdUnixSocket.Bind(relative).Dispose());
        Assert.Equal(ErrorKind.FileNotFound, e.Kind);
        Assert.Equal(full, e.Path);
    }
}
