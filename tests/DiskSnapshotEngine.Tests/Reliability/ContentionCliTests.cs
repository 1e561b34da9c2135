using System.Diagnostics;
using System.Security.Cryptography;
using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Reliability;

/// <summary>
/// Issue 6's acceptance, with real dse processes: writers exclude each other and readers, readers share, a merge
/// into a parent someone reads fails at once, parents stay immutable, a FIFO parent never blocks, a clone that runs
/// out of space leaves nothing behind.
/// </summary>
public class ContentionCliTests
{
    private const int ExitLocked = 12, ExitReadOnly = 15, ExitFileNotFound = 8, ExitDiskFull = 13;

    [Fact]
    public async Task A_second_writer_fails_at_once_naming_the_first()
    {
        using var dir = new TempDirectory();
        var image = dir.File("disk.vdi");
        Assert.Equal(0, (await CliRunner.RunAsync("create", image, "--size", "16M")).ExitCode);

        // The first writer holds the image while it waits for its stdin.
        using var first = CliRunner.Start("write", image, "--offset", "0", "--input", "-");
        LockProbe.WaitUntilHeld(image);
        var input = dir.File("in.bin");
        File.WriteAllBytes(input, new byte[4096]);
        var sw = Stopwatch.StartNew();
        var second = await CliRunner.RunProcessAsync(null, "write", image, "--offset", "0", "--input", input);
        sw.Stop();
        first.StandardInput.BaseStream.Write(new byte[] { 1, 2, 3 });
        first.StandardInput.Close();
        await first.WaitForExitAsync();

        Assert.Equal(ExitLocked, second.ExitCode);
        Assert.Contains("locked", second.StdErr);
        Assert.Contains($"pid {first.Id}", second.StdErr);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(10), $"the second writer took {sw.Elapsed}");
        Assert.Equal(0, first.ExitCode);
    }

    [Fact]
    public async Task Merging_a_child_while_another_process_exports_its_parent_fails_at_once_and_reads_share()
    {
        using var dir = new TempDirectory();
        var parent = dir.File("parent.vdi");
        var child = dir.File("child.vdi");
        Assert.Equal(0, (await CliRunner.RunAsync("create", parent, "--size", "32M")).ExitCode);
        Assert.Equal(0, (await CliRunner.RunAsync("create", child, "--parent", parent)).ExitCode);
        var data = dir.File("d.bin");
        File.WriteAllBytes(data, RandomNumberGenerator.GetBytes(1 << 20));
        Assert.Equal(0, (await CliRunner.RunAsync("write", child, "--offset", "1M", "--input", data)).ExitCode);
        // The child sealed its parent; merging into it is the user's explicit choice.
        Assert.Equal(0, (await CliRunner.RunAsync("unseal", parent)).ExitCode);

        // An export to a pipe nobody reads blocks once the pipe is full, holding its shared locks.
        using var reader = CliRunner.Start("export", parent, "-");
        LockProbe.WaitUntilHeld(parent);

        // Other readers share...
        var parallel = await Task.WhenAll(
            CliRunner.RunProcessAsync(null, "compare", parent, parent),
            CliRunner.RunProcessAsync(null, "info", child, "--chain"));
        Assert.All(parallel, r => Assert.True(r.ExitCode == 0, r.ToString()));

        // ...a merge into the parent does not wait.
        var sw = Stopwatch.StartNew();
        var merge = await CliRunner.RunProcessAsync(null, "merge", child);
        sw.Stop();
        reader.Kill();
        await reader.WaitForExitAsync();
        Assert.Equal(ExitLocked, merge.ExitCode);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(10), $"the merge took {sw.Elapsed} to refuse");
        Assert.True(File.Exists(child), "the child must still be there");
        Assert.Equal(0, (await CliRunner.RunProcessAsync(null, "merge", child)).ExitCode);
    }

    [Fact]
    public async Task Writing_into_an_image_with_children_is_refused_unless_forced()
    {
        using var dir = new TempDirectory();
        var parent = dir.File("parent.vhdx");
        var child = dir.File("child.vhdx");
        Assert.Equal(0, (await CliRunner.RunAsync("create", parent, "--size", "16M")).ExitCode);
        Assert.Equal(0, (await CliRunner.RunAsync("create", child, "--parent", parent)).ExitCode);
        var before = File.ReadAllBytes(parent);
        var data = dir.File("d.bin");
        File.WriteAllBytes(data, new byte[] { 9, 9, 9 });

        var refused = await CliRunner.RunProcessAsync(null, "write", parent, "--offset", "0", "--input", data);
        Assert.Equal(ExitReadOnly, refused.ExitCode);
        Assert.Contains(child, refused.StdErr);
        Assert.Equal(before, File.ReadAllBytes(parent));
        Assert.Equal(0, (await CliRunner.RunProcessAsync(null, "info", child, "--chain")).ExitCode);

        Assert.Equal(0, (await CliRunner.RunProcessAsync(null, "write", parent, "--offset", "0", "--input", data, "--force")).ExitCode);
        Assert.NotEqual(before, File.ReadAllBytes(parent));
    }

    [LinuxFact("makes a FIFO with mkfifo")]
    public async Task A_vhdx_whose_parent_path_names_a_fifo_fails_without_blocking()
    {
        using var dir = new TempDirectory();
        var parent = dir.File("parent.vhdx");
        var child = dir.File("child.vhdx");
        Assert.Equal(0, (await CliRunner.RunAsync("create", parent, "--size", "16M")).ExitCode);
        Assert.Equal(0, (await CliRunner.RunAsync("create", child, "--parent", parent)).ExitCode);
        File.Delete(parent);
        ExternalTool.RunChecked("mkfifo", parent);

        var sw = Stopwatch.StartNew();
        var r = await CliRunner.RunProcessAsync(null, "info", child, "--chain");
        sw.Stop();
        Assert.Equal(ExitFileNotFound, r.ExitCode);
        Assert.Contains("FIFO", r.StdErr);
        Assert.Contains(parent, r.StdErr);
        // Process start-up included; a blocking open would never return.
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(10), $"took {sw.Elapsed}");
    }

    [RequiresMountFact]
    public async Task A_clone_that_runs_out_of_space_leaves_nothing_and_the_source_is_untouched()
    {
        using var dir = new TempDirectory();
        var src = dir.File("src.vhdx");
        var child = dir.File("child.vhdx");
        Assert.Equal(0, (await CliRunner.RunAsync("create", src, "--size", "64M", "--block-size", "1M")).ExitCode);
        var data = dir.File("d.bin");
        File.WriteAllBytes(data, RandomNumberGenerator.GetBytes(24 << 20));
        Assert.Equal(0, (await CliRunner.RunAsync("write", src, "--offset", "0", "--input", data)).ExitCode);
        Assert.Equal(0, (await CliRunner.RunAsync("create", child, "--parent", src)).ExitCode);
        File.WriteAllBytes(data, RandomNumberGenerator.GetBytes(4 << 20));
        Assert.Equal(0, (await CliRunner.RunAsync("write", child, "--offset", "40M", "--input", data)).ExitCode);
        var before = (await CliRunner.RunProcessAsync(null, "export", child, "-")).StdOutBytes;

        // Far too small: the preflight refuses before writing, naming what it needs.
        int neededMiB;
        using (var fs = SmallFileSystem.TryMount(16)!)
        {
            var r = await CliRunner.RunProcessAsync(null, "clone", child, fs.File("clone.vdi"));
            Assert.True(r.ExitCode == ExitDiskFull, r.ToString());
            var m = System.Text.RegularExpressions.Regex.Match(r.StdErr, @"needs up to ([0-9.]+) MiB");
            Assert.True(m.Success, r.StdErr);
            neededMiB = (int)Math.Ceiling(double.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));
            Assert.Empty(Directory.EnumerateFileSystemEntries(fs.Path));
        }
        // Just above the estimate: the copy itself may hit ENOSPC (format overhead). Either it fits and reads the
        // same, or it stops with the disk-full code and removes its partial output.
        foreach (var format in new[] { "vdi", "vhdx", "raw" })
        {
            using var fs = SmallFileSystem.TryMount(neededMiB + 1)!;
            var dst = fs.File("clone." + (format == "raw" ? "img" : format));
            var r = await CliRunner.RunProcessAsync(null, "clone", child, dst);
            if (r.ExitCode == 0)
            {
                Assert.Equal(0, (await CliRunner.RunProcessAsync(null, "compare", child, dst)).ExitCode);
                continue;
            }
            Assert.True(r.ExitCode == ExitDiskFull, $"{format}: {r}");
            Assert.Contains("no space", r.StdErr);
            Assert.Empty(Directory.EnumerateFileSystemEntries(fs.Path));
        }
        var after = (await CliRunner.RunProcessAsync(null, "export", child, "-")).StdOutBytes;
        Assert.True(before.AsSpan().SequenceEqual(after), "the source chain reads differently after the failed clones");
    }
}
