using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Operations;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Operations;

/// <summary>The file-system steps every crash-safe operation relies on.</summary>
public sealed class DurableFilesTests
{
    [LinuxFact("folders are fsynced through libc")]
    public void Syncing_a_folder_that_cannot_be_opened_is_an_error_naming_it()
    {
        using var dir = new TempDirectory("durable");
        string missing = dir.File("gone");
        var e = Assert.Throws<DiskImageException>(() => DurableFiles.SyncDirectoryOf(Path.Combine(missing, "file.vhdx")));
        Assert.Equal(ErrorKind.FileNotFound, e.Kind);
        Assert.Equal(missing, e.Path);
        Assert.Contains("durable", e.Message);
    }
}
