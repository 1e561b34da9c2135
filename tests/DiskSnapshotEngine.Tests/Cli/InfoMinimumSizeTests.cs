using System.Text.Json;
using DiskSnapshotEngine.Tests.Infrastructure;
using DiskSnapshotEngine.Tests.Operations;

namespace DiskSnapshotEngine.Tests.Cli;

/// <summary>
/// <c>info</c> shows a differencing image's minimum size (Hyper-V's MinimumSize): the end of the last data the chain
/// shows within the child's size, its parent's included, in whole sectors; exactly what <c>resize --shrink</c> accepts.
/// </summary>
public class InfoMinimumSizeTests
{
    private const long Size = 8L << 20;

    [Theory]
    [InlineData((5L << 20) + 1000, 1L << 20, 4096, 6L << 20)]               // the parent's data is the last: a base VHDX holds whole 1 MiB blocks
    [InlineData(2L << 20, (4L << 20) + 100, 600, (4L << 20) + 1024)]        // the child's own data is the last: a child holds sectors
    public async Task A_childs_minimum_size_is_what_resize_shrink_accepts(long parentEnd, long childAt, int childLength, long minimum)
    {
        using var dir = new TempDirectory("info-minimum");
        string parent = dir.File("parent.vhdx"), child = dir.File("child.vhdx");
        var model = new byte[Size];
        OpsKit.CreateBase(parent, Size, 1 << 20);
        using (var chain = DiskImage.Open(parent, OpenOptions.ReadWrite))
        {
            var data = RandomData.Bytes(4096, 1);
            chain.Write(parentEnd - data.Length, data);
            data.CopyTo(model, parentEnd - data.Length);
        }
        OpsKit.CreateChild(child, parent);
        DifferencingResizeTests.WriteAt(child, childAt, RandomData.Bytes(childLength, 2), model);

        using (var doc = JsonDocument.Parse((await CliRunner.OkAsync("info", child, "--json")).StdOut))
            Assert.Equal(minimum, doc.RootElement.GetProperty("minimumSize").GetInt64());
        var text = (await CliRunner.OkAsync("info", child, "--verbose")).StdOut;
        Assert.Contains(text.Split('\n'), l => l.StartsWith("minimum size:", StringComparison.Ordinal) && l.Contains($"({minimum} bytes)"));

        var bytes = File.ReadAllBytes(child);
        var under = await CliRunner.RunAsync("resize", child, "--size", (minimum - 512).ToString(), "--shrink");
        Assert.Equal(14, under.ExitCode);
        Assert.Contains($"cannot shrink below {minimum} bytes", under.StdErr);
        Assert.Equal(bytes, File.ReadAllBytes(child));

        await CliRunner.OkAsync("resize", child, "--size", minimum.ToString(), "--shrink");
        OpsKit.AssertContent(model.AsSpan(0, (int)minimum).ToArray(), child, "the child shrunk to its minimum size");
    }
}
