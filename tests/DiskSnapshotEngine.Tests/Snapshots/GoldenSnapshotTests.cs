using System.Text.Json;
using DiskSnapshotEngine.Snapshots;
using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Snapshots;

/// <summary>
/// A snapshot moves the disk's file to the snapshot layer's name and puts a new child at its path. For a golden disk,
/// clones in other folders that name it by path would then read the new current state: snapshot create refuses it
/// (exit 15), changing nothing, and a snapshot of the clone is the way (issue 10 §2).
/// </summary>
public class GoldenSnapshotTests
{
    private const int ExitReadOnly = 15;

    private static Task<CliResult> Ok(params string[] args) => CliRunner.OkAsync(args);

    private static async Task<string[]> Seal(string image) =>
        (await CliRunner.InfoAsync(image)).GetProperty("seal").EnumerateArray().Select(e => e.GetString()!).ToArray();

    private static Dictionary<string, byte[]> Folder(string folder) =>
        Directory.GetFiles(folder).ToDictionary(f => f, File.ReadAllBytes);

    [Theory]
    [InlineData("vhdx")]
    [InlineData("vdi")]
    [InlineData("qcow2")]
    public async Task Snapshot_create_of_a_golden_disk_is_refused_and_a_clone_in_another_folder_keeps_reading_the_golden(string ext)
    {
        using var dir = new TempDirectory("golden-snapshot");
        var (golden, clone) = await CliRunner.GoldenLabAsync(dir, ext, "8M", 200_000, 11);
        await Ok("create", clone, "--parent", golden);
        var cloneView = (await Ok("export", clone, "-")).StdOutBytes;
        var templatesBefore = Folder(dir.File("templates"));

        var refused = await CliRunner.RunAsync("snapshot", "create", golden, "--name", "s1");
        Assert.Equal(ExitReadOnly, refused.ExitCode);
        Assert.Single(refused.StdErr.Trim().Split('\n'));
        Assert.Contains(golden, refused.StdErr);
        Assert.Contains("golden", refused.StdErr);
        Assert.Contains("snapshot of a linked clone", refused.StdErr);
        Assert.Contains("dse unseal", refused.StdErr);
        // Nothing changed: the same files with the same bytes (no layer, no catalog), and the clone reads the golden.
        var templatesAfter = Folder(dir.File("templates"));
        Assert.Equal(templatesBefore.Keys.Order(), templatesAfter.Keys.Order());
        foreach (var (file, bytes) in templatesBefore) Assert.True(bytes.AsSpan().SequenceEqual(templatesAfter[file]), $"{file} changed");
        await Ok("check", clone);
        Assert.Equal(cloneView, (await Ok("export", clone, "-")).StdOutBytes);

        // A snapshot of the clone is the way: the clone is not sealed, and its new snapshot layer is sealed as one.
        await Ok("snapshot", "create", clone, "--name", "s1");
        string layer = DiskSnapshots.PathOf(clone, DiskSnapshots.Catalog(clone).Snapshots.Single());
        Assert.Equal(new[] { "snapshot" }, await Seal(layer));
        Assert.Empty(await Seal(clone));
        Assert.Equal(cloneView, (await Ok("export", clone, "-")).StdOutBytes);
        await Ok("snapshot", "revert", clone, "--name", "s1");
        await Ok("snapshot", "delete", clone, "--name", "s1");
        Assert.Equal(cloneView, (await Ok("export", clone, "-")).StdOutBytes);
        Assert.Equal(new[] { "golden" }, await Seal(golden));
    }

    /// <summary>
    /// Deleting a snapshot merges its layer into the current disk (commit, the disk's file replaced) or pulls it into
    /// the disk (the disk's file rewritten). A current disk that is golden (a linked clone elsewhere reads through it) is
    /// refused up front: exit 15, the catalog and every file as they were, and the next snapshot command finds nothing pending.
    /// </summary>
    [Theory]
    [InlineData("vhdx", "s1")]
    [InlineData("vdi", "s1")]
    [InlineData("vhdx", "s2")]
    [InlineData("vdi", "s2")]
    public async Task Snapshot_delete_that_would_rewrite_a_golden_disk_is_refused_before_anything_changes(string ext, string name)
    {
        using var dir = new TempDirectory("golden-snapshot-delete");
        Directory.CreateDirectory(dir.File("far"));
        string disk = dir.File($"vm.{ext}"), clone = dir.File($"far/c.{ext}");
        var data = new byte[70_000];
        new Random(12).NextBytes(data);
        await File.WriteAllBytesAsync(dir.File("w.bin"), data);
        await Ok("create", disk, "--size", "8M");
        await Ok("write", disk, "--offset", "0", "--input", dir.File("w.bin"));
        await Ok("snapshot", "create", disk, "--name", "s1");
        await Ok("write", disk, "--offset", "1M", "--input", dir.File("w.bin"));
        await Ok("snapshot", "create", disk, "--name", "s2");
        await Ok("write", disk, "--offset", "2M", "--input", dir.File("w.bin"));
        if (name == "s1") await Ok("snapshot", "delete", disk, "--name", "s2"); // s1 then is the base right under the disk: commit
        await Ok("clone", "--linked", disk, clone); // the live disk becomes a golden image
        var cloneView = (await Ok("export", clone, "-")).StdOutBytes;
        var before = Folder(dir.Path);

        var refused = await CliRunner.RunAsync("snapshot", "delete", disk, "--name", name);
        Assert.Equal(ExitReadOnly, refused.ExitCode);
        Assert.Contains("golden", refused.StdErr);
        var after = Folder(dir.Path);
        Assert.Equal(before.Keys.Order(), after.Keys.Order());
        foreach (var (file, bytes) in before) Assert.True(bytes.AsSpan().SequenceEqual(after[file]), $"{file} changed");
        await Ok("snapshot", "list", disk);
        Assert.Null(DiskSnapshots.Catalog(disk).Pending);
        await Ok("check", clone);
        Assert.Equal(cloneView, (await Ok("export", clone, "-")).StdOutBytes);
    }
}
