using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.IO;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Formats.Raw;

public class RawLayerTests
{
    [Fact]
    public void Sparse_raw_reports_holes_as_zero_and_reads_back_writes()
    {
        using var dir = new TempDirectory();
        var path = dir.File("disk.img");
        using (var layer = DiskImage.Create(path, new ImageCreateOptions(64L << 20)))
        using (var chain = new DiskChain(new[] { layer }))
        {
            var data = RandomData.Bytes(5000, 1);
            chain.Write(10L << 20, data);
            chain.Flush();
            var back = new byte[5000];
            chain.Read(10L << 20, back);
            Assert.Equal(data, back);
        }
        using var reopened = DiskImage.Open(path);
        var extents = reopened.GetExtents(0, reopened.VirtualSize).ToList();
        Assert.Equal(64L << 20, extents.Sum(e => e.Length));
        var dataExtents = extents.Where(e => e.Kind == ExtentKind.Data).ToList();
        Assert.NotEmpty(dataExtents);
        // The file system rounds data to its block size, but nothing near the start or end is data.
        Assert.All(dataExtents, e => Assert.InRange(e.Offset, 9L << 20, 11L << 20));
        Assert.Contains(extents, e => e.Kind == ExtentKind.Zero && e.Offset == 0);
    }

    [Fact]
    public void Reading_outside_the_disk_is_a_typed_error()
    {
        using var dir = new TempDirectory();
        using var chain = new DiskChain(new[] { DiskImage.Create(dir.File("d.raw"), new ImageCreateOptions(1 << 20)) });
        var ex = Assert.Throws<DiskImageException>(() => chain.Read((1 << 20) - 10, new byte[11]));
        Assert.Equal(ErrorKind.OutOfBounds, ex.Kind);
    }

    [LinuxFact("makes a FIFO with mkfifo")]
    public async Task A_fifo_is_refused_without_blocking()
    {
        using var dir = new TempDirectory();
        var fifo = dir.File("pipe.img");
        ExternalTool.RunChecked("mkfifo", fifo);
        var open = Task.Run(() => Assert.Throws<DiskImageException>(() => DiskImage.OpenLayer(fifo, writable: false)));
        var ex = await open.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(ErrorKind.FileNotFound, ex.Kind);
        Assert.Contains("FIFO", ex.Message);
    }

    [Fact]
    public void Create_refuses_to_overwrite_an_existing_file()
    {
        using var dir = new TempDirectory();
        var path = dir.File("x.img");
        File.WriteAllText(path, "keep me");
        var ex = Assert.Throws<DiskImageException>(() => DiskImage.Create(path, new ImageCreateOptions(1 << 20)));
        Assert.Equal(ErrorKind.AlreadyExists, ex.Kind);
        Assert.Equal("keep me", File.ReadAllText(path));
    }
}
