using System.Text.Json;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Cli;

/// <summary>
/// The seal records the first linked clone dse made of an image while it is the only one: merging exactly that clone
/// back needs no unseal and lifts the seal (the shared benchmark's create/write/merge). A second clone, a seal the user
/// set, or a seal written before the record existed leave it unknown, and the merge is refused as before.
/// </summary>
public class SoleCloneMergeTests
{
    private const int ExitReadOnly = 15;

    private static Task<CliResult> Ok(params string[] args) => CliRunner.OkAsync(args);

    private static Task<JsonElement> Info(string image) => CliRunner.InfoAsync(image);

    private static async Task<string> Input(TempDirectory dir, int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        string path = dir.File($"in-{seed}.bin");
        await File.WriteAllBytesAsync(path, bytes);
        return path;
    }

    private static async Task<(TempDirectory Dir, string Golden)> Lab(string ext)
    {
        var dir = new TempDirectory("sole-clone");
        Directory.CreateDirectory(dir.File("templates"));
        Directory.CreateDirectory(dir.File("vms/a"));
        Directory.CreateDirectory(dir.File("vms/b"));
        string golden = dir.File($"templates/golden.{ext}");
        await Ok("create", golden, "--size", "8M");
        await Ok("write", golden, "--offset", "0", "--input", await Input(dir, 300_000, 1));
        // Private (0600): nobody else may read it, so its first clone is trusted as its only one.
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(golden, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        return (dir, golden);
    }

    [RequiresToolTheory("qemu-img")]
    [InlineData("vhdx")]
    [InlineData("vdi")]
    [InlineData("qcow2")]
    public async Task Merging_the_sole_clone_back_needs_no_unseal_and_lifts_the_seal(string ext)
    {
        var (dir, golden) = await Lab(ext);
        using var lab = dir;
        string clone = dir.File($"vms/a/k.{ext}");
        await Ok("create", clone, "--parent", golden);
        var info = await Info(golden);
        Assert.True(info.GetProperty("sealed").GetBoolean());
        string sole = info.GetProperty("soleChild").GetString()!;
        if (ext != "vdi") // VHDX and qcow2 keep the whole id; a VDI keeps a 48-bit key of its uuidCreate
            Assert.True(Guid.TryParse(sole, out _), sole);
        if (ext == "vhdx") Assert.Equal((await Info(clone)).GetProperty("identity").GetProperty("id").GetString(), sole);
        Assert.Contains("sole clone:", (await Ok("info", golden)).StdOut);
        ExternalTool.RunChecked("qemu-img", "check", golden);

        await Ok("write", clone, "--offset", "1M", "--input", await Input(dir, 100_000, 2));
        var expected = (await Ok("export", clone, "-")).StdOutBytes;
        var merged = await Ok("merge", clone);
        Assert.Contains($"unsealed {golden}", merged.StdOut);
        Assert.False(File.Exists(clone));
        var after = await Info(golden);
        Assert.False(after.GetProperty("sealed").GetBoolean());
        Assert.Equal(JsonValueKind.Null, after.GetProperty("soleChild").ValueKind);
        Assert.Equal(expected, (await Ok("export", golden, "-")).StdOutBytes);
        await Ok("check", golden);
        ExternalTool.RunChecked("qemu-img", "check", golden);
    }

    [Theory]
    [InlineData("vhdx")]
    [InlineData("vdi")]
    [InlineData("qcow2")]
    public async Task A_second_clone_makes_the_record_unknown_and_merging_either_clone_is_refused(string ext)
    {
        var (dir, golden) = await Lab(ext);
        using var lab = dir;
        string first = dir.File($"vms/a/k.{ext}"), second = dir.File($"vms/b/k.{ext}");
        await Ok("create", first, "--parent", golden);
        await Ok("clone", "--linked", golden, second);
        Assert.Equal(JsonValueKind.Null, (await Info(golden)).GetProperty("soleChild").ValueKind);
        Assert.Contains("unknown or several", (await Ok("info", golden)).StdOut);
        await Ok("write", first, "--offset", "0", "--input", await Input(dir, 5000, 3));
        var goldenBefore = await File.ReadAllBytesAsync(golden);
        var secondView = (await Ok("export", second, "-")).StdOutBytes;

        foreach (var child in new[] { first, second })
        {
            var refused = await CliRunner.RunAsync("merge", child);
            Assert.Equal(ExitReadOnly, refused.ExitCode);
            Assert.Contains("merge into it", refused.StdErr);
            Assert.True(File.Exists(child));
        }
        Assert.Equal(goldenBefore, await File.ReadAllBytesAsync(golden));
        Assert.Equal(secondView, (await Ok("export", second, "-")).StdOutBytes);
        await Ok("check", second);
    }

    /// <summary>A golden image the user sealed (dse seal) names no clone: even its first clone's merge is refused.</summary>
    [Theory]
    [InlineData("vhdx")]
    [InlineData("vdi")]
    [InlineData("qcow2")]
    public async Task A_seal_the_user_set_records_no_sole_clone(string ext)
    {
        var (dir, golden) = await Lab(ext);
        using var lab = dir;
        await Ok("seal", golden);
        string clone = dir.File($"vms/a/k.{ext}");
        await Ok("create", clone, "--parent", golden);
        Assert.Equal(JsonValueKind.Null, (await Info(golden)).GetProperty("soleChild").ValueKind);
        Assert.Equal(ExitReadOnly, (await CliRunner.RunAsync("merge", clone)).ExitCode);

        // --force merges for this merge only: the seal stays (the user said other clones may read through it).
        await Ok("merge", clone, "--force");
        Assert.True((await Info(golden)).GetProperty("sealed").GetBoolean());
    }

    /// <summary>A chain of sole clones merges down in one step: every layer on the way records the one above it.</summary>
    [Fact]
    public async Task A_chain_of_sole_clones_merges_into_the_golden_in_one_step()
    {
        var (dir, golden) = await Lab("vhdx");
        using var lab = dir;
        string mid = dir.File("vms/a/mid.vhdx"), top = dir.File("vms/b/top.vhdx");
        await Ok("create", mid, "--parent", golden);
        await Ok("write", mid, "--offset", "0", "--input", await Input(dir, 4096, 4));
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(mid, UnixFileMode.UserRead | UnixFileMode.UserWrite); // private too
        await Ok("create", top, "--parent", mid);
        await Ok("write", top, "--offset", "2M", "--input", await Input(dir, 4096, 5));
        var expected = (await Ok("export", top, "-")).StdOutBytes;
        var json = JsonDocument.Parse((await Ok("merge", top, "--into", golden, "--json")).StdOut).RootElement;
        Assert.Equal(golden, json.GetProperty("unsealed").GetString());
        Assert.False(File.Exists(mid) || File.Exists(top));
        Assert.Equal(expected, (await Ok("export", golden, "-")).StdOutBytes);
        Assert.False((await Info(golden)).GetProperty("sealed").GetBoolean());
    }

    /// <summary>A child made by another program (qemu-img) is not the clone the seal records: its merge is refused.</summary>
    [RequiresToolFact("qemu-img")]
    public async Task A_child_dse_did_not_make_is_not_the_sole_clone()
    {
        var (dir, golden) = await Lab("qcow2");
        using var lab = dir;
        string clone = dir.File("vms/a/k.qcow2"), foreign = dir.File("vms/b/q.qcow2");
        await Ok("create", clone, "--parent", golden);
        ExternalTool.RunChecked("qemu-img", "create", "-f", "qcow2", "-F", "qcow2", "-b", golden, foreign);
        Assert.NotEqual(JsonValueKind.Null, (await Info(golden)).GetProperty("soleChild").ValueKind);
        var before = await File.ReadAllBytesAsync(golden);
        Assert.Equal(ExitReadOnly, (await CliRunner.RunAsync("merge", foreign)).ExitCode);
        Assert.Equal(before, await File.ReadAllBytesAsync(golden));
    }

    /// <summary>
    /// The price of the record: a second clone must turn the parent's record to "several", a write QEMU forbids while it
    /// runs the first clone (its backing file is locked against writers). The create is refused with exit 12, naming the
    /// way out, and changes nothing; a golden sealed with dse seal beforehand names no clone, so it is never written again.
    /// </summary>
    [RequiresToolFact("qemu-io")]
    public async Task A_second_clone_while_qemu_runs_the_first_needs_the_golden_sealed_beforehand()
    {
        var (dir, golden) = await Lab("qcow2");
        using var lab = dir;
        string first = dir.File("vms/a/k.qcow2"), second = dir.File("vms/b/k.qcow2");
        await Ok("create", first, "--parent", golden);
        var before = await File.ReadAllBytesAsync(golden);
        using (QemuHolder.Start(first, "qcow2", backing: golden))
        {
            // The parent given as a relative path: the error names its full path, as every other error does.
            var refused = await CliRunner.RunAsync("create", second, "--parent", Path.GetRelativePath(Directory.GetCurrentDirectory(), golden));
            Assert.True(refused.ExitCode == 12, refused.ToString());
            Assert.Contains("dse seal", refused.StdErr);
            Assert.StartsWith($"dse: error: {golden}: ", refused.StdErr);
            Assert.False(File.Exists(second));
            Assert.Equal(before, await File.ReadAllBytesAsync(golden));
        }
        await Ok("seal", golden);
        using (QemuHolder.Start(first, "qcow2"))
            await Ok("create", second, "--parent", golden);
        Assert.Equal(JsonValueKind.Null, (await Info(golden)).GetProperty("soleChild").ValueKind);
    }
}
