using DiskSnapshotEngine.Cli;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Snapshots;

/// <summary>
/// A snapshot layer is always sealed: a disk (or a snapshot layer) this user cannot write is refused by <c>snapshot
/// create</c> and <c>revert</c> before anything changes, where a golden image of that kind gets an unsealed linked clone.
/// Root, whom the mode does not stop, seals it as any layer.
/// </summary>
public class SnapshotUnwritableLayerTests
{
    private static readonly int ExitReadOnly = ExitCodes.ForKind(ErrorKind.ReadOnly);

    [RootFact("runs dse as nobody through setpriv")]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public async Task A_disk_its_user_cannot_write_gets_no_snapshot_and_nothing_changes()
    {
        using var dir = new TempDirectory("snap-mode");
        File.SetUnixFileMode(dir.Path, (UnixFileMode)0x1FF); // 0777: nobody may create files here
        string disk = dir.File("disk.vhdx"), input = dir.File("data.bin");
        File.WriteAllBytes(input, RandomData.Bytes(100_000, 3));
        await CliRunner.OkAsync("create", disk, "--size", "16M");
        await CliRunner.OkAsync("write", disk, "--offset", "0", "--input", input);
        ExternalTool.RunChecked("chown", "65534:65534", disk);
        File.SetUnixFileMode(disk, UnixFileMode.UserRead | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        var before = Listing(dir.Path);

        var (code, _, stderr) = CliRunner.RunAsNobody("snapshot", "create", disk, "--name", "s1");
        Assert.True(code == ExitReadOnly, stderr);
        Assert.Contains($"{disk}: cannot take a snapshot: its owner nobody and mode 0444 do not let this user write it, and a snapshot layer must be sealed", stderr);
        Assert.Equal(before, Listing(dir.Path));

        // Root may write it: the snapshot is taken and its layer sealed; the files keep the disk's owner and mode.
        await CliRunner.OkAsync("snapshot", "create", disk, "--name", "s1");
        var layer = Assert.Single(Directory.GetFiles(dir.Path, "disk.snap-*.vhdx"));
        Assert.Equal(["snapshot"], (await CliRunner.InfoAsync(layer)).GetProperty("seal").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.GroupRead | UnixFileMode.OtherRead, File.GetUnixFileMode(disk));
    }

    [RootFact("runs dse as nobody through setpriv")]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public async Task Revert_to_an_unsealed_layer_its_user_cannot_write_is_refused_and_to_a_sealed_one_works()
    {
        using var dir = new TempDirectory("snap-mode");
        File.SetUnixFileMode(dir.Path, (UnixFileMode)0x1FF);
        string disk = dir.File("disk.vhdx");
        await CliRunner.OkAsync("create", disk, "--size", "16M");
        ExternalTool.RunChecked("chown", "65534:65534", disk);
        Assert.Equal(0, CliRunner.RunAsNobody("snapshot", "create", disk, "--name", "sealed").ExitCode);
        Assert.Equal(0, CliRunner.RunAsNobody("snapshot", "create", disk, "--name", "bare").ExitCode);
        var catalog = DiskSnapshotEngine.Snapshots.DiskSnapshots.Catalog(disk);
        string sealedLayer = DiskSnapshotEngine.Snapshots.DiskSnapshots.PathOf(disk, catalog.Snapshots.Single(s => s.Name == "sealed"));
        string bareLayer = DiskSnapshotEngine.Snapshots.DiskSnapshots.PathOf(disk, catalog.Snapshots.Single(s => s.Name == "bare"));
        // A layer without its seal (unsealed by hand, or made by a dse that left it so), then made read-only.
        await CliRunner.OkAsync("unseal", bareLayer);
        foreach (var f in new[] { sealedLayer, bareLayer }) File.SetUnixFileMode(f, UnixFileMode.UserRead | UnixFileMode.GroupRead);
        var before = Listing(dir.Path);

        var (code, _, stderr) = CliRunner.RunAsNobody("snapshot", "revert", disk, "--name", "bare");
        Assert.True(code == ExitReadOnly, stderr);
        Assert.Contains("cannot revert to snapshot 'bare'", stderr);
        Assert.Contains("a snapshot layer must be sealed (the new current state reads through it)", stderr); // not create's reason
        Assert.DoesNotContain("the disk's file becomes the layer", stderr);
        Assert.Equal(before, Listing(dir.Path));

        (code, _, stderr) = CliRunner.RunAsNobody("snapshot", "revert", disk, "--name", "sealed");
        Assert.True(code == 0, stderr);
    }

    // Every file with its bytes, owner and mode.
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    private static string[] Listing(string dir) => Directory.GetFiles(dir).Order(StringComparer.Ordinal)
        .Select(f => $"{f} {ContentHash.OfFile(f)} {File.GetUnixFileMode(f)} {ExternalTool.RunChecked("stat", "-c", "%u:%g", f).Trim()}").ToArray();
}
