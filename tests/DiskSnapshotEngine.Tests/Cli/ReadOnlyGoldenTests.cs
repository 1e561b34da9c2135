using System.Text.Json;
using DiskSnapshotEngine.Tests.Infrastructure;
using static DiskSnapshotEngine.Tests.Cli.VerbScenarios;

namespace DiskSnapshotEngine.Tests.Cli;

/// <summary>
/// A golden image this process cannot write (a read-only mount, a mode that denies the user) is already immutable: a
/// linked clone of it is made without writing the seal, says so in one line on stderr, and every verb that would
/// write the golden still refuses (ReadOnly, exit 15) with the file unchanged. As root a mode of 0444 stops nothing,
/// so there the seal is written as into any golden image.
/// </summary>
public class ReadOnlyGoldenTests
{
    private const int ExitReadOnly = 15;

    [RequiresLoopMountFact]
    public async Task A_golden_on_a_read_only_mount_is_cloned_unsealed_and_no_verb_writes_it()
    {
        using var fs = LoopFileSystem.Create(64, "mkfs.ext4", "-q", "-F");
        using var dir = new TempDirectory("ro-golden");
        string input = dir.File("data.bin");
        File.WriteAllBytes(input, RandomData.Bytes(300_000, 5));
        var formats = new[] { "vhdx", "vdi", "qcow2" };
        // sealed.vhdx: sealed before it was exported, with its first clone recorded as the only one.
        var before = await ReadOnlyGoldens.MakeAsync(fs, input, "vhdx", formats);

        foreach (var ext in formats)
        {
            string golden = fs.File($"golden.{ext}"), clone = dir.File($"clone.{ext}"), child = dir.File($"child.{ext}");
            var linked = await CliRunner.RunAsync("clone", "--linked", golden, clone, "--json");
            Assert.True(linked.ExitCode == 0, $"{ext}: {linked}");
            using (var doc = JsonDocument.Parse(linked.StdOut))
                Assert.Equal(golden, doc.RootElement.GetProperty("parent").GetProperty("image").GetString());
            var note = Assert.Single(linked.StdErr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
            using (var doc = JsonDocument.Parse(note))
                Assert.Contains($"{golden} was not sealed (the file system is read-only)", doc.RootElement.GetProperty("note").GetProperty("message").GetString());

            var created = await CliRunner.RunAsync("create", child, "--parent", golden);
            Assert.True(created.ExitCode == 0, $"{ext}: {created}");
            Assert.StartsWith("dse: note: ", Assert.Single(created.StdErr.Split('\n', StringSplitOptions.RemoveEmptyEntries)));
            Assert.False((await CliRunner.InfoAsync(golden)).GetProperty("sealed").GetBoolean());

            // The clone works: it reads as the golden, takes writes, checks clean (qemu-img too for qcow2).
            await Ok("compare", clone, golden);
            await Ok("write", clone, "--offset", "4M", "--input", input);
            await Ok("check", clone);
            if (ext == "qcow2" && ExternalTool.Has("qemu-img")) ExternalTool.RunChecked("qemu-img", "check", clone);

            // Every verb that would write the golden is refused, typed, and changes nothing.
            var cloneHash = ContentHash.OfFile(clone);
            foreach (var args in new[]
            {
                new[] { "write", golden, "--offset", "0", "--input", input },
                ["seal", golden], ["unseal", golden], ["merge", clone], ["compact", golden], ["resize", golden, "--size", "32M"],
                ["set-identity", golden, "--new"],
            })
            {
                if (args[0] == "set-identity" && ext == "qcow2") continue; // no disk id: Unsupported (exit 5) before any open for writing
                var r = await CliRunner.RunAsync([.. args, "--json"]);
                Assert.True(r.ExitCode == ExitReadOnly, $"dse {string.Join(' ', args)}: {r}");
                using var doc = JsonDocument.Parse(r.StdErr.Trim().Split('\n')[^1]);
                Assert.Equal("readOnly", doc.RootElement.GetProperty("error").GetProperty("kind").GetString());
            }
            Assert.Equal(cloneHash, ContentHash.OfFile(clone));
        }

        var second = await CliRunner.RunAsync("clone", "--linked", fs.File("sealed.vhdx"), dir.File("second.vhdx"));
        Assert.True(second.ExitCode == 0, second.ToString());
        Assert.Contains("seal still records another linked clone as its only one (the file system is read-only", second.StdErr);
        Assert.True((await CliRunner.InfoAsync(fs.File("sealed.vhdx"))).GetProperty("sealed").GetBoolean());

        ReadOnlyGoldens.AssertUnchanged(before);
    }

    /// <summary>
    /// A golden of mode 0444 on a writable file system. Root may write it anyway, so dse writes its own mark there as
    /// into any golden (never content nor the version children check), and root's later verbs are refused by the seal.
    /// Another user cannot write it: the clone is made unsealed with the note, and that user's writes are refused.
    /// </summary>
    [RootFact("runs dse as nobody through setpriv")]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public async Task A_golden_of_mode_444_is_sealed_by_root_and_cloned_unsealed_by_a_user_who_cannot_write_it()
    {
        using var dir = new TempDirectory("ro-mode");
        File.SetUnixFileMode(dir.Path, (UnixFileMode)0x1FF); // 0777: nobody makes its clone here
        string input = dir.File("data.bin");
        File.WriteAllBytes(input, RandomData.Bytes(100_000, 6));
        string rootGolden = dir.File("root.vhdx"), userGolden = dir.File("user.vhdx");
        foreach (var golden in new[] { rootGolden, userGolden })
        {
            await Ok("create", golden, "--size", "16M");
            await Ok("write", golden, "--offset", "0", "--input", input);
            File.SetUnixFileMode(golden, UnixFileMode.UserRead | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        }

        Directory.CreateDirectory(dir.File("vms")); // a clone elsewhere: only the seal can refuse root's write
        var asRoot = await Ok("clone", "--linked", rootGolden, dir.File("vms/rootclone.vhdx"));
        Assert.Equal("", asRoot.StdErr);
        Assert.True((await CliRunner.InfoAsync(rootGolden)).GetProperty("sealed").GetBoolean());
        var refused = await CliRunner.RunAsync("write", rootGolden, "--offset", "0", "--input", input);
        Assert.True(refused.ExitCode == ExitReadOnly && refused.StdErr.Contains("sealed"), refused.ToString());

        string hash = ContentHash.OfFile(userGolden);
        var (code, _, stderr) = AsNobody("clone", "--linked", userGolden, dir.File("userclone.vhdx"));
        Assert.True(code == 0, stderr);
        Assert.Contains($"{userGolden} was not sealed (its owner root and mode 0444 do not let this user write it)", Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries)));
        Assert.Equal(hash, ContentHash.OfFile(userGolden));
        (code, _, stderr) = AsNobody("write", userGolden, "--offset", "0", "--input", input);
        Assert.True(code == ExitReadOnly, stderr);
        Assert.Contains("permission denied", stderr);
        Assert.Equal(hash, ContentHash.OfFile(userGolden));
        (code, _, stderr) = AsNobody("check", dir.File("userclone.vhdx"));
        Assert.True(code == 0, stderr);
    }

    private static (int ExitCode, string StdOut, string StdErr) AsNobody(params string[] args) => CliRunner.RunAsNobody(args);
}
