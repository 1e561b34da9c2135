using System.Text.Json;
using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Operations;

/// <summary><c>dse measure</c>: within 10% of the file size of a real clone, for the data present and fully allocated.</summary>
public class MeasureTests
{
    private const long Size = 64L << 20;

    private static void Within10Percent(long measured, long actual, string what) =>
        Assert.True(Math.Abs(measured - actual) <= actual / 10, $"{what}: measured {measured}, the real clone has {actual}");

    [Theory]
    [InlineData("vhdx", null)]
    [InlineData("vhdx", "1M")]
    [InlineData("vdi", null)]
    [InlineData("qcow2", null)]
    [InlineData("vhd", null)]
    [InlineData("raw", null)]
    public async Task Measure_is_within_ten_percent_of_real_clones(string format, string? blockSize)
    {
        using var dir = new TempDirectory("measure");
        // A chain with data spread over the disk: a base and a child, random writes in each.
        var rng = new Random(101);
        var model = new byte[Size];
        OpsKit.CreateBase(dir.File("base.vdi"), Size);
        OpsKit.RandomWrites(dir.File("base.vdi"), rng, 20, model);
        OpsKit.CreateChild(dir.File("top.vdi"), dir.File("base.vdi"));
        OpsKit.RandomWrites(dir.File("top.vdi"), rng, 20, model);
        string ext = format == "raw" ? "img" : format;
        var extra = blockSize is null ? Array.Empty<string>() : new[] { "--block-size", blockSize };

        var m = await CliRunner.RunAsync(new[] { "measure", dir.File("top.vdi"), "--format", format, "--json" }.Concat(extra).ToArray());
        Assert.True(m.ExitCode == 0, m.ToString());
        long required, full;
        using (var doc = JsonDocument.Parse(m.StdOut))
        {
            required = doc.RootElement.GetProperty("required").GetInt64();
            full = doc.RootElement.GetProperty("fullyAllocated").GetInt64();
        }
        var c = await CliRunner.RunAsync(new[] { "clone", dir.File("top.vdi"), dir.File("dyn." + ext) }.Concat(extra).ToArray());
        Assert.True(c.ExitCode == 0, c.ToString());
        Within10Percent(required, new FileInfo(dir.File("dyn." + ext)).Length, $"{format} dynamic");
        if (format != "qcow2")
        {
            var f = await CliRunner.RunAsync(new[] { "clone", dir.File("top.vdi"), dir.File("fixed." + ext), "--type", "fixed" }.Concat(extra).ToArray());
            Assert.True(f.ExitCode == 0, f.ToString());
            Within10Percent(full, new FileInfo(dir.File("fixed." + ext)).Length, $"{format} fixed");
        }
        else Assert.True(full >= Size, $"a fully allocated qcow2 holds at least the disk ({full})");
    }
}
