using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Tests.IO;

/// <summary>What the operating system reports maps to the error kind the README's exit-code table promises.</summary>
public class OsErrorsTests
{
    [Theory]
    [InlineData(Libc.EROFS, "open for writing", ErrorKind.ReadOnly)]
    [InlineData(Libc.EROFS, "create", ErrorKind.ReadOnly)]
    [InlineData(Libc.EACCES, "open for writing", ErrorKind.ReadOnly)]
    [InlineData(Libc.EPERM, "write", ErrorKind.ReadOnly)]
    [InlineData(Libc.EACCES, "open for reading", ErrorKind.Io)]
    [InlineData(Libc.ENOSPC, "write", ErrorKind.DiskFull)]
    public void An_errno_maps_to_its_kind(int errno, string operation, ErrorKind expected)
    {
        var e = OsErrors.FromErrno(errno, "/x/disk.vhdx", operation);
        Assert.Equal(expected, e.Kind);
        Assert.Contains("/x/disk.vhdx", e.Message);
    }

    [Fact]
    public void A_refused_write_from_a_dotnet_api_is_read_only_and_a_refused_read_is_io()
    {
        Assert.Equal(ErrorKind.ReadOnly, OsErrors.Translate(new UnauthorizedAccessException("denied"), "/x/d.img", "write").Kind);
        Assert.Equal(ErrorKind.Io, OsErrors.Translate(new UnauthorizedAccessException("denied"), "/x/d.img", "read").Kind);
        Assert.Equal(ErrorKind.ReadOnly, OsErrors.Translate(new IOException("Read-only file system", Libc.EROFS), "/x/d.img", "flush").Kind);
    }
}
