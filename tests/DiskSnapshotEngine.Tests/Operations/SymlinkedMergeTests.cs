using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Operations;

/// <summary>
/// A chain kept in one folder with its disks linked from another: merge and pull named through the link act on the
/// link's target (the real child), as a rewrite does, so the child merged away is the real file and a pulled child
/// stays readable through its new parent link.
/// </summary>
public class SymlinkedMergeTests
{
    private static async Task<(TempDirectory Dir, string Golden, string Child, string Link, byte[] Content)> Chain(string name, string format)
    {
        var dir = new TempDirectory(name);
        Directory.CreateDirectory(dir.File("real"));
        Directory.CreateDirectory(dir.File("links"));
        string golden = dir.File($"real/g.{format}"), child = dir.File($"real/c.{format}"), link = dir.File($"links/c.{format}"), input = dir.File("in.bin");
        await CliRunner.OkAsync("create", golden, "--size", "8M");
        File.WriteAllBytes(input, RandomData.Bytes(300_000, 5));
        await CliRunner.OkAsync("write", golden, "--offset", "0", "--input", input);
        await CliRunner.OkAsync("create", child, "--parent", golden);
        await CliRunner.OkAsync("write", child, "--offset", "2M", "--input", input);
        File.CreateSymbolicLink(link, $"../real/c.{format}");
        byte[] content = (await CliRunner.OkAsync("export", child, "-")).StdOutBytes;
        return (dir, golden, child, link, content);
    }

    [Fact]
    public async Task A_merge_through_a_symlink_merges_and_removes_the_real_child()
    {
        foreach (var format in new[] { "vhdx", "qcow2" })
        {
            var (dir, golden, child, link, content) = await Chain("symlinked-merge", format);
            using (dir)
            {
                var r = await CliRunner.RunAsync("merge", link, "--force");
                Assert.True(r.ExitCode == 0, $"{format}: {r}");
                Assert.False(File.Exists(child), $"{format}: the real child was left, still linked to the parent it was merged into");
                Assert.Equal(content, (await CliRunner.OkAsync("export", golden, "-")).StdOutBytes);
            }
        }
    }

    [Fact]
    public async Task A_pull_through_a_symlink_leaves_the_real_child_readable_on_its_grandparent()
    {
        foreach (var format in new[] { "vhdx", "qcow2" })
        {
            var (dir, golden, child, link, content) = await Chain("symlinked-pull", format);
            using (dir)
            {
                string top = dir.File($"real/t.{format}");
                await CliRunner.OkAsync("create", top, "--parent", child);
                File.Delete(link);
                File.CreateSymbolicLink(link, $"../real/t.{format}");
                var r = await CliRunner.RunAsync("merge", link, "--pull", "--force");
                Assert.True(r.ExitCode == 0, $"{format}: {r}");
                Assert.Equal(content, (await CliRunner.OkAsync("export", top, "-")).StdOutBytes);
                Assert.Equal(golden, (await CliRunner.InfoAsync(top)).GetProperty("parent").GetProperty("image").GetString());
                Assert.Equal($"../real/t.{format}", new FileInfo(link).LinkTarget);
            }
        }
    }

    [Fact]
    public async Task A_rebase_through_a_symlink_in_another_folder_links_the_real_child_to_its_new_parent()
    {
        foreach (var format in new[] { "vhdx", "qcow2" })
        {
            var (dir, golden, child, _, content) = await Chain("symlinked-rebase", format);
            using (dir)
            {
                string copy = dir.File($"real/g2.{format}"), deep = dir.File($"links/deep/c.{format}");
                await CliRunner.OkAsync("clone", golden, copy);
                Directory.CreateDirectory(dir.File("links/deep"));
                File.CreateSymbolicLink(deep, $"../../real/c.{format}");
                var r = await CliRunner.RunAsync("rebase", deep, "--parent", copy);
                Assert.True(r.ExitCode == 0, $"{format}: {r}");
                Assert.Equal(copy, (await CliRunner.InfoAsync(child)).GetProperty("parent").GetProperty("image").GetString());
                Assert.Equal(content, (await CliRunner.OkAsync("export", child, "-")).StdOutBytes);
            }
        }
    }
}
