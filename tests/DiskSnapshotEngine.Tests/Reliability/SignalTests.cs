using System.Diagnostics;
using DiskSnapshotEngine.Cli;
using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Reliability;

/// <summary>
/// Ctrl-C (SIGINT) and SIGTERM during long operations, sent to real dse processes once the operation is under way:
/// the exit code says so, no partial output stays, every image reads as before, and a rerun finishes the job.
/// </summary>
public class SignalTests
{
    // Each piece of the copy loop (4 MiB) then takes at least this long: every operation below copies 16 pieces or
    // more, so it is still copying, well before its commit point, when the signal lands (seconds, even on a loaded CI).
    private const int PieceDelayMs = 200;

    [Fact]
    public async Task Sigint_during_a_clone_exits_130_and_leaves_no_partial_clone()
    {
        using var dir = new TempDirectory();
        var src = await MakeImage(dir, "src.vdi", 64);
        var before = await ExportHash(src);
        var dst = dir.File("dst.vhdx");

        using var p = CliRunner.StartSlowed(PieceDelayMs, "clone", src, dst);
        p.StandardInput.Close();
        var stderr = p.StandardError.ReadToEndAsync();
        bool started = await WaitFor(() => File.Exists(dst + ".dse-partial") || p.HasExited);
        Assert.True(started);
        if (!p.HasExited) ExternalTool.RunChecked("kill", "-INT", p.Id.ToString());
        await p.WaitForExitAsync();

        Assert.True(p.ExitCode == ExitCodes.Interrupted, $"exit {p.ExitCode}: {await stderr}");
        Assert.False(File.Exists(dst), "a clone was left");
        Assert.False(File.Exists(dst + ".dse-partial"), "a partial clone was left");
        Assert.Equal(before, await ExportHash(src));
    }

    [Fact]
    public async Task Sigterm_during_a_merge_exits_143_keeps_the_content_and_a_rerun_finishes()
    {
        using var dir = new TempDirectory();
        var parent = await MakeImage(dir, "parent.vhdx", 32);
        var child = dir.File("child.vhdx");
        Assert.Equal(0, (await CliRunner.RunAsync("create", child, "--parent", parent)).ExitCode);
        var data = dir.File("data.bin");
        File.WriteAllBytes(data, RandomData.Bytes(64 << 20, seed: 1));
        Assert.Equal(0, (await CliRunner.RunAsync("write", child, "--offset", "16M", "--input", data)).ExitCode);
        var before = await ExportHash(child);
        // The child sealed its parent; merging into it is the user's explicit choice.
        Assert.Equal(0, (await CliRunner.RunAsync("unseal", parent)).ExitCode);

        using var p = CliRunner.StartSlowed(PieceDelayMs, "merge", child);
        p.StandardInput.Close();
        var stderr = p.StandardError.ReadToEndAsync();
        Assert.True(await WaitFor(() => File.Exists(child + ".dse-journal.json") || p.HasExited));
        if (!p.HasExited) ExternalTool.RunChecked("kill", "-TERM", p.Id.ToString());
        await p.WaitForExitAsync();
        Assert.True(p.ExitCode == ExitCodes.Terminated, $"exit {p.ExitCode}: {await stderr}");

        // Interrupted: the child's chain reads exactly as before.
        Assert.True(File.Exists(child));
        Assert.Equal(before, await ExportHash(child));
        // The same command finishes it; the parent now holds what the child showed.
        var rerun = await CliRunner.RunProcessAsync(null, "merge", child);
        Assert.True(rerun.ExitCode == 0, rerun.ToString());
        Assert.False(File.Exists(child));
        Assert.Equal(before, await ExportHash(parent));
    }

    [Fact]
    public async Task Sigint_during_a_compact_exits_130_leaves_no_temporary_file_and_the_image_reads_as_before()
    {
        using var dir = new TempDirectory();
        var image = await MakeImage(dir, "disk.vhdx", 64);
        var before = await ExportHash(image);
        byte[] file = await File.ReadAllBytesAsync(image);

        using var p = CliRunner.StartSlowed(PieceDelayMs, "compact", image);
        p.StandardInput.Close();
        var stderr = p.StandardError.ReadToEndAsync();
        string temp = image + DiskSnapshotEngine.Operations.Compact.TempSuffix;
        Assert.True(await WaitFor(() => File.Exists(temp) || p.HasExited));
        if (!p.HasExited) ExternalTool.RunChecked("kill", "-INT", p.Id.ToString());
        await p.WaitForExitAsync();

        Assert.True(p.ExitCode == ExitCodes.Interrupted, $"exit {p.ExitCode}: {await stderr}");
        Assert.False(File.Exists(temp), "the temporary compacted image was left");
        // Compact replaces the image only by its final rename: the file is untouched byte for byte.
        Assert.Equal(file, await File.ReadAllBytesAsync(image));
        Assert.Equal(before, await ExportHash(image));
    }

    [Fact]
    public async Task Sigterm_during_a_snapshot_delete_exits_143_keeps_every_state_and_a_rerun_finishes()
    {
        using var dir = new TempDirectory();
        var disk = await MakeImage(dir, "vm.vdi", 16);
        Assert.Equal(0, (await CliRunner.RunAsync("snapshot", "create", disk, "--name", "a")).ExitCode);
        var data = dir.File("data.bin");
        File.WriteAllBytes(data, RandomData.Bytes(64 << 20, seed: 2));
        Assert.Equal(0, (await CliRunner.RunAsync("write", disk, "--offset", "32M", "--input", data)).ExitCode);
        Assert.Equal(0, (await CliRunner.RunAsync("snapshot", "create", disk, "--name", "b")).ExitCode);
        File.WriteAllBytes(data, RandomData.Bytes(1 << 20, seed: 3));
        Assert.Equal(0, (await CliRunner.RunAsync("write", disk, "--offset", "40M", "--input", data)).ExitCode);
        string layerA = Directory.GetFiles(dir.Path, "vm.snap-*.vdi").OrderBy(File.GetLastWriteTimeUtc).First();
        var current = await ExportHash(disk);
        var snapshotA = await ExportHash(layerA);

        // Deleting b pulls its 63 MiB not overwritten since (16 pieces) into the current state.
        using var p = CliRunner.StartSlowed(PieceDelayMs, "snapshot", "delete", disk, "--name", "b");
        p.StandardInput.Close();
        var stderr = p.StandardError.ReadToEndAsync();
        string catalog = disk + ".snapshots.json";
        Assert.True(await WaitFor(() => p.HasExited || ReadShared(catalog).Contains("\"pending\"", StringComparison.Ordinal)));
        if (!p.HasExited) ExternalTool.RunChecked("kill", "-TERM", p.Id.ToString());
        await p.WaitForExitAsync();
        Assert.True(p.ExitCode == ExitCodes.Terminated, $"exit {p.ExitCode}: {await stderr}");

        Assert.Equal(current, await ExportHash(disk));
        Assert.Equal(snapshotA, await ExportHash(layerA));
        var rerun = await CliRunner.RunProcessAsync(null, "snapshot", "delete", disk, "--name", "b");
        Assert.True(rerun.ExitCode == 0, rerun.ToString());
        var list = await CliRunner.RunProcessAsync(null, "snapshot", "list", disk, "--json");
        using (var doc = System.Text.Json.JsonDocument.Parse(list.StdOut))
            Assert.Equal(new[] { "a" }, doc.RootElement.GetProperty("snapshots").EnumerateArray().Select(x => x.GetProperty("name").GetString()));
        Assert.Equal(current, await ExportHash(disk));
        Assert.Equal(snapshotA, await ExportHash(layerA));
    }

    // The catalog is replaced by rename while we poll: read whatever version is there, or nothing.
    private static string ReadShared(string path)
    {
        try { return File.ReadAllText(path); }
        catch (IOException) { return ""; }
    }

    private static async Task<string> MakeImage(TempDirectory dir, string name, int dataMiB)
    {
        var path = dir.File(name);
        Assert.Equal(0, (await CliRunner.RunAsync("create", path, "--size", "256M")).ExitCode);
        var data = dir.File(name + ".bin");
        File.WriteAllBytes(data, RandomData.Bytes(dataMiB << 20, seed: 4));
        Assert.Equal(0, (await CliRunner.RunAsync("write", path, "--offset", "0", "--input", data)).ExitCode);
        File.Delete(data);
        return path;
    }

    private static async Task<string> ExportHash(string image)
    {
        var r = await CliRunner.RunProcessAsync(null, "export", image, "-");
        Assert.True(r.ExitCode == 0, r.ToString());
        return ContentHash.Of(r.StdOutBytes);
    }

    private static async Task<bool> WaitFor(Func<bool> condition)
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < TimeSpan.FromSeconds(60))
        {
            if (condition()) return true;
            await Task.Delay(5);
        }
        return false;
    }
}
