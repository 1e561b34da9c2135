using System.Security.Cryptography;
using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Operations;

/// <summary>
/// A disk kept on a bigger mount and linked into the hypervisor's folder: a verb that rewrites the image into a new
/// file (compact, reset, resize by rewrite) renames it over the link's target, so the link stays and names the new
/// file; the snapshot verbs, which would put a new file at the link's path, refuse it and change nothing.
/// </summary>
public class SymlinkedImageTests
{
    [Fact]
    public async Task A_rewrite_through_a_symlink_replaces_its_target_and_keeps_the_link()
    {
        foreach (var format in new[] { "vhdx", "vdi", "qcow2", "vhd" })
        {
            using var dir = new TempDirectory("symlinked");
            Directory.CreateDirectory(dir.File("real"));
            Directory.CreateDirectory(dir.File("links"));
            string real = dir.File($"real/d.{format}"), link = dir.File($"links/d.{format}");
            string child = dir.File($"real/c.{format}"), childLink = dir.File($"links/c.{format}"), input = dir.File("in.bin");
            await CliRunner.OkAsync("create", real, "--size", "8M");
            File.WriteAllBytes(input, RandomData.Bytes(300_000, 17));
            await CliRunner.OkAsync("write", real, "--offset", "1M", "--input", input);
            File.CreateSymbolicLink(link, $"../real/d.{format}");
            File.CreateSymbolicLink(childLink, $"../real/c.{format}");
            byte[] content = (await CliRunner.OkAsync("export", real, "-")).StdOutBytes;

            // A VHD grows by a rewrite; the others in place (the link is kept either way).
            foreach (var args in new[] { new[] { "compact", link }, new[] { "resize", link, "--size", "8200K" } })
            {
                long inode = Inode(real);
                var r = await CliRunner.RunAsync(args);
                Assert.True(r.ExitCode == 0, $"{format} {args[0]}: {r}");
                Assert.True(new FileInfo(link).LinkTarget == $"../real/d.{format}", $"{format} {args[0]}: the link was replaced");
                Assert.Equal(content, (await CliRunner.OkAsync("export", real, "-")).StdOutBytes.AsSpan(0, content.Length).ToArray());
                if (args[0] == "compact" || format == "vhd") Assert.NotEqual(inode, Inode(real)); // rewritten: a new file at the target
            }

            await CliRunner.OkAsync("create", child, "--parent", real);
            await CliRunner.OkAsync("write", child, "--offset", "0", "--input", input);
            var reset = await CliRunner.RunAsync("reset", childLink);
            Assert.True(reset.ExitCode == 0, $"{format} reset: {reset}");
            Assert.Equal($"../real/c.{format}", new FileInfo(childLink).LinkTarget);
            Assert.Equal(0, (await CliRunner.RunAsync("compare", child, real)).ExitCode);
        }
    }

    [Fact]
    public async Task A_snapshot_verb_refuses_a_disk_named_through_a_symlink_and_changes_nothing()
    {
        foreach (var format in new[] { "vhdx", "qcow2" })
        {
            using var dir = new TempDirectory("symlinked-snap");
            Directory.CreateDirectory(dir.File("real"));
            Directory.CreateDirectory(dir.File("links"));
            string real = dir.File($"real/d.{format}"), link = dir.File($"links/d.{format}");
            await CliRunner.OkAsync("create", real, "--size", "8M");
            File.CreateSymbolicLink(link, $"../real/d.{format}");
            string before = Hash(real);
            foreach (var args in new[] { new[] { "snapshot", "create", link, "--name", "s" }, new[] { "snapshot", "repair", link }, new[] { "rollback", link } })
            {
                var r = await CliRunner.RunAsync(args);
                Assert.True(r.ExitCode == 14, $"{format} {string.Join(' ', args)}: {r}");
                Assert.Contains("symbolic link", r.StdErr);
            }
            Assert.Equal(before, Hash(real));
            Assert.Equal($"../real/d.{format}", new FileInfo(link).LinkTarget);
            Assert.Equal(new[] { real }, Directory.GetFiles(dir.File("real")));
            Assert.Equal(new[] { link }, Directory.GetFiles(dir.File("links")));
        }
    }

    [Fact]
    public async Task An_export_through_a_symlink_writes_its_target_and_keeps_the_link()
    {
        using var dir = new TempDirectory("symlinked-export");
        string disk = dir.File("d.vhdx"), old = dir.File("old.raw"), link = dir.File("out.raw"), dangling = dir.File("new.raw");
        await CliRunner.OkAsync("create", disk, "--size", "1M");
        File.WriteAllBytes(old, new byte[] { 1, 2, 3 });
        File.CreateSymbolicLink(link, "old.raw");
        File.CreateSymbolicLink(dangling, "made.raw");
        Assert.Equal(16, (await CliRunner.RunAsync("export", disk, link)).ExitCode); // the target exists: --force needed
        await CliRunner.OkAsync("export", disk, link, "--force");
        Assert.Equal("old.raw", new FileInfo(link).LinkTarget);
        Assert.Equal(1 << 20, new FileInfo(old).Length);
        await CliRunner.OkAsync("export", disk, dangling);
        Assert.Equal("made.raw", new FileInfo(dangling).LinkTarget);
        Assert.Equal(1 << 20, new FileInfo(dir.File("made.raw")).Length);
    }

    private static string Hash(string path) => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(path)));

    private static long Inode(string path)
    {
        Assert.Equal(0, DiskSnapshotEngine.IO.Libc.Stat(path, out var st));
        return (long)st.Inode;
    }
}
