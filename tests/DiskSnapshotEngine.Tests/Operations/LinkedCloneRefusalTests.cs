using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Operations;

/// <summary>
/// A refused linked clone changes nothing: the parent is sealed only once every refusal a create would give (the child's
/// format cannot link to it, the destination exists, its folder is missing) has been asked, so the parent's bytes stay.
/// </summary>
public sealed class LinkedCloneRefusalTests
{
    [Fact]
    public async Task Every_refused_clone_leaves_the_parent_byte_for_byte()
    {
        using var dir = new TempDirectory("clone-refused");
        string golden = dir.File("golden.vhdx"), existing = dir.File("existing.vhdx");
        await CliRunner.OkAsync("create", golden, "--size", "8M", "--logical-sector-size", "4096");
        await File.WriteAllBytesAsync(existing, [1, 2, 3]);
        string before = ContentHash.OfFile(golden);

        // (args, exit code, what stderr says)
        (string[] Args, int Code, string Says)[] refusals =
        [
            (["clone", "--linked", golden, dir.File("c.vhd")], 5, "a differencing VHD's parent must be a VHD"),
            (["create", dir.File("c.img"), "--parent", golden], 5, "a raw image cannot be a differencing child"),
            (["clone", "--linked", golden, existing], 16, "already exists"),
            (["create", dir.File(Path.Combine("missing", "c.vhdx")), "--parent", golden], 8, "does not exist"),
        ];
        foreach (var (args, code, says) in refusals)
        {
            var result = await CliRunner.RunAsync(args);
            Assert.True(result.ExitCode == code, $"dse {string.Join(' ', args)}: exit {result.ExitCode}, {result.StdErr}");
            Assert.Contains(says, result.StdErr);
            Assert.True(before == ContentHash.OfFile(golden), $"dse {string.Join(' ', args)} changed the parent");
        }
        Assert.Equal([1, 2, 3], await File.ReadAllBytesAsync(existing));
        Assert.False(File.Exists(dir.File("c.vhd")) || File.Exists(dir.File("c.img")));
    }

    // A folder on a read-only mount exists and holds no such name, so only the exclusive create itself can refuse
    // it (EROFS): the parent's seal is written after that create, never before.
    [RequiresMountFact]
    public async Task A_clone_into_a_read_only_folder_leaves_the_parent_byte_for_byte()
    {
        using var dir = new TempDirectory("clone-refused-ro");
        using var fs = SmallFileSystem.TryMount(16)!;
        string golden = dir.File("golden.vhdx");
        await CliRunner.OkAsync("create", golden, "--size", "8M");
        fs.RemountReadOnly();
        string before = ContentHash.OfFile(golden);
        var result = await CliRunner.RunAsync("clone", "--linked", golden, fs.File("c.vhdx"));
        Assert.True(result.ExitCode != 0, $"a clone into a read-only folder succeeded: {result.StdOut}");
        Assert.True(before == ContentHash.OfFile(golden), $"the refused clone changed the parent: {result.StdErr}");
        Assert.False(File.Exists(fs.File("c.vhdx")));
    }
}
