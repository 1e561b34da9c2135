using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Formats.Vhd;

/// <summary>
/// A fixed VHD is its data followed by the footer, with no block table: a block size asked for it is refused (as for
/// raw), rather than ignored while <c>info</c> then shows the default one.
/// </summary>
public sealed class VhdFixedOptionTests
{
    [Fact]
    public async Task A_block_size_for_a_fixed_vhd_is_refused_by_create_and_clone_and_nothing_is_made()
    {
        using var dir = new TempDirectory("vhd-fixed-bs");
        string fixedVhd = dir.File("f.vhd"), src = dir.File("src.vhd"), clone = dir.File("c.vhd");
        var create = await CliRunner.RunAsync("create", fixedVhd, "--size", "8M", "--type", "fixed", "--block-size", "512K");
        Assert.True(create.ExitCode == 14, create.ToString());
        Assert.Contains($"{fixedVhd}: a fixed VHD has no blocks", create.StdErr);
        await CliRunner.OkAsync("create", src, "--size", "8M");
        var cloned = await CliRunner.RunAsync("clone", src, clone, "--type", "fixed", "--block-size", "512K");
        Assert.True(cloned.ExitCode == 14, cloned.ToString());
        Assert.Contains($"{clone}: a fixed VHD has no blocks", cloned.StdErr);
        Assert.Equal([src], Directory.GetFiles(dir.Path));
        // Without the option both are made, and a dynamic VHD still takes one.
        await CliRunner.OkAsync("create", fixedVhd, "--size", "8M", "--type", "fixed");
        await CliRunner.OkAsync("clone", src, dir.File("d.vhd"), "--block-size", "512K");
        Assert.Equal(512 * 1024, (await CliRunner.InfoAsync(dir.File("d.vhd"))).GetProperty("blockSize").GetInt64());
    }
}
