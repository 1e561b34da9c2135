using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Operations;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Operations;

/// <summary>A VDI or VHD keeps one size per chain: a rebase onto a parent of another size is refused before anything is copied.</summary>
public class RebaseSizeTests
{
    [Theory]
    [InlineData(".vdi")]
    [InlineData(".vhd")]
    public async Task Rebase_onto_a_parent_of_another_size_is_refused_and_changes_no_file(string ext)
    {
        using var dir = new TempDirectory("rebase-size");
        var rng = new Random(61);
        string p1 = dir.File("p1" + ext), p2 = dir.File("p2" + ext), child = dir.File("c" + ext);
        OpsKit.CreateBase(p1, 4L << 20);
        OpsKit.RandomWrites(p1, rng, 6, new byte[4L << 20]);
        OpsKit.CreateBase(p2, 8L << 20);
        OpsKit.RandomWrites(p2, rng, 6, new byte[8L << 20]);
        OpsKit.CreateChild(child, p1);
        var before = Directory.GetFiles(dir.Path).ToDictionary(f => f, File.ReadAllBytes);

        var e = await Assert.ThrowsAsync<DiskImageException>(() => Rebase.RunAsync(child, p2));
        Assert.Equal(ErrorKind.ChainInvalid, e.Kind);
        Assert.Equal(before.Keys.Order(), Directory.GetFiles(dir.Path).Order());
        foreach (var (file, bytes) in before)
            Assert.True(bytes.AsSpan().SequenceEqual(File.ReadAllBytes(file)), $"{file} changed");
    }
}
