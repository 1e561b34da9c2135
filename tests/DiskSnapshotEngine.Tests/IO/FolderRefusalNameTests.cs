using DiskSnapshotEngine.Cli;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.IO;

/// <summary>
/// A verb that creates its output under a temporary name beside the file the user gave (a clone's or export's partial
/// output, compact's new image, a snapshot's new current state) is refused naming the user's file and its folder, in
/// one line with exit 15, whether the check up front refuses it or the create of the temporary file itself does.
/// </summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class FolderRefusalNameTests
{
    private static readonly int ExitReadOnly = ExitCodes.ForKind(ErrorKind.ReadOnly);
    private const UnixFileMode Mode0755 = (UnixFileMode)0x1ED, Mode0777 = (UnixFileMode)0x1FF, Mode1777 = (UnixFileMode)0x3FF;

    [RootFact("runs dse as nobody through setpriv")]
    public async Task Every_verb_into_a_folder_nobody_cannot_write_names_the_users_file_and_the_folder()
    {
        using var dir = new TempDirectory("folder-refusal");
        File.SetUnixFileMode(dir.Path, Mode0777);
        string closed = dir.File("closed");
        Directory.CreateDirectory(closed);
        File.SetUnixFileMode(closed, Mode0755); // root's: nobody may not create files here
        string source = dir.File("source.qcow2"), image = Path.Combine(closed, "image.qcow2");
        await CliRunner.OkAsync("create", source, "--size", "8M");
        await CliRunner.OkAsync("create", image, "--size", "8M");
        ExternalTool.RunChecked("chown", "65534:65534", source, image); // nobody may read both and write the image

        (string[] Args, string Named)[] cases =
        [
            (["clone", source, Path.Combine(closed, "clone.qcow2")], Path.Combine(closed, "clone.qcow2")),
            (["export", source, Path.Combine(closed, "export.raw")], Path.Combine(closed, "export.raw")),
            (["compact", image], image),
            (["create", Path.Combine(closed, "new.qcow2"), "--size", "8M"], Path.Combine(closed, "new.qcow2")),
        ];
        foreach (var (args, named) in cases)
            Expect(args, named, closed);
        Assert.Equal(["image.qcow2"], Directory.GetFileSystemEntries(closed).Select(Path.GetFileName));
    }

    // A sticky world-writable folder (/tmp's mode) lets nobody create files but not remove root's: a temporary file a
    // crashed run of root left there blocks the create. The refusal names the user's file, not only that file.
    [RootFact("runs dse as nobody through setpriv")]
    public async Task A_temporary_file_another_user_left_in_a_sticky_folder_is_refused_naming_the_users_file()
    {
        using var dir = new TempDirectory("folder-refusal-sticky");
        File.SetUnixFileMode(dir.Path, Mode1777);
        string source = dir.File("source.qcow2"), image = dir.File("image.qcow2"), disk = dir.File("disk.qcow2");
        await CliRunner.OkAsync("create", source, "--size", "8M");
        await CliRunner.OkAsync("create", image, "--size", "8M");
        await CliRunner.OkAsync("create", disk, "--size", "8M");
        ExternalTool.RunChecked("chown", "65534:65534", source, image, disk);
        var listing = Directory.GetFileSystemEntries(dir.Path).Order().ToArray();
        string clone = dir.File("clone.qcow2"), export = dir.File("export.raw");
        string[] stale = [clone + ".dse-partial", export + ".dse-partial", image + ".dse-compact", disk + ".dse-new"];
        foreach (var file in stale) File.WriteAllBytes(file, [1, 2, 3]); // root's, left by a crashed run

        Expect(["clone", source, clone], clone, dir.Path, staleNamed: true);
        Expect(["export", source, export], export, dir.Path, staleNamed: true);
        Expect(["compact", image], image, dir.Path, staleNamed: true);
        Expect(["snapshot", "create", disk, "--name", "s1"], disk, dir.Path, staleNamed: true);
        // Refused before anything changed: no output, no snapshot layer, no catalog, only the stale files added.
        Assert.Equal(listing.Concat(stale).Order(), Directory.GetFileSystemEntries(dir.Path).Order());
    }

    // The create itself refused by the folder (the path the verbs' checks up front do not stop: here a file system
    // remounted read-only after them, as a policy access(2) does not consult would refuse it): the user's file is named.
    [RequiresMountFact]
    public void A_temporary_file_the_folder_refuses_is_named_by_the_users_file()
    {
        using var fs = SmallFileSystem.TryMount(16)!;
        fs.RemountReadOnly();
        string named = fs.File("out.qcow2");
        var e = Assert.Throws<DiskImageException>(() => DiskSnapshotEngine.IO.ImageFile.Create(named + ".dse-partial", named: named));
        Assert.Equal(ErrorKind.ReadOnly, e.Kind);
        Assert.Equal(named, e.Path);
        Assert.Contains($"cannot create its new file beside it: its folder {fs.Path} is on a read-only file system", e.Message);
        Assert.DoesNotContain(".dse-", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    // A temporary file this user may remove (its own, in a folder it may write) is not one "this user cannot remove":
    // it exists because another run is making it now (or the caller did not remove a stale one), so the create is
    // refused as already existing, naming the user's file and the temporary one.
    [Fact]
    public void A_temporary_file_this_user_may_remove_is_refused_as_already_existing_not_as_unremovable()
    {
        using var dir = new TempDirectory("folder-refusal-own");
        string named = dir.File("out.qcow2"), temp = named + ".dse-partial";
        File.WriteAllBytes(temp, [1, 2, 3]);
        var e = Assert.Throws<DiskImageException>(() => DiskSnapshotEngine.IO.ImageFile.Create(temp, named: named));
        Assert.Equal(ErrorKind.AlreadyExists, e.Kind);
        Assert.Equal(named, e.Path);
        Assert.Contains($"out.qcow2.dse-partial already exists in its folder {dir.Path}", e.Message);
        Assert.DoesNotContain("cannot be removed", e.Message);
        Assert.Equal([1, 2, 3], File.ReadAllBytes(temp));
    }

    // One line, exit 15, naming the user's file first and its folder; no temporary name unless it is the one to remove.
    private static void Expect(string[] args, string named, string folder, bool staleNamed = false)
    {
        var (code, stdout, stderr) = CliRunner.RunAsNobody(args);
        string command = $"dse {string.Join(' ', args)}";
        Assert.True(code == ExitReadOnly, $"{command}: exit {code}, stdout {stdout}, stderr {stderr}");
        string line = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.True(line.StartsWith($"dse: error: {named}: ", StringComparison.Ordinal), $"{command}: {line}");
        Assert.True(line.Contains(folder, StringComparison.Ordinal), $"{command} does not name the folder: {line}");
        if (staleNamed) Assert.Contains("cannot be removed by this user", line);
        else Assert.DoesNotContain(".dse-", line);
    }
}
