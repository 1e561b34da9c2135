using System.Text.Json;
using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Operations;

/// <summary>
/// A full clone the target format cannot hold (a 4096-byte-sector source to a 512-byte-sector format, a size past
/// the format's limit) is refused naming the clone the user asked for, never the partial file it is written under
/// first, and leaves nothing behind.
/// </summary>
public sealed class CloneRefusalPathTests
{
    [Theory]
    [InlineData("4k.vhdx", "--logical-sector-size", "4096", "out.vhd", 5)]
    [InlineData("4k.vhdx", "--logical-sector-size", "4096", "out.vdi", 5)]
    [InlineData("4k.vhdx", "--logical-sector-size", "4096", "out.qcow2", 5)]
    [InlineData("3t.vhdx", "--size", "3T", "out.vhd", 14)]
    public async Task A_clone_the_target_format_cannot_hold_names_the_clone_and_leaves_nothing(string source, string option, string value, string output, int exit)
    {
        using var dir = new TempDirectory("clone-refusal");
        string src = dir.File(source), dst = dir.File(output);
        var create = new List<string> { "create", src, option, value };
        if (option != "--size") create.AddRange(["--size", "16M"]);
        await CliRunner.OkAsync(create.ToArray());
        var before = Directory.GetFiles(dir.Path).Order(StringComparer.Ordinal).ToArray();

        var r = await CliRunner.RunAsync("clone", src, dst, "--json");
        Assert.True(r.ExitCode == exit, r.ToString());
        var error = JsonDocument.Parse(r.StdErr.Trim()).RootElement.GetProperty("error");
        Assert.Equal(dst, error.GetProperty("path").GetString());
        Assert.StartsWith(dst + ": ", error.GetProperty("message").GetString());
        Assert.DoesNotContain(".dse-partial", r.StdErr);
        Assert.Equal(before, Directory.GetFiles(dir.Path).Order(StringComparer.Ordinal).ToArray());
    }
}
