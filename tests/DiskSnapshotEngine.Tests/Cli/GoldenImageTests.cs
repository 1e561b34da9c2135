using System.Text.Json;
using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Snapshots;
using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Cli;

/// <summary>
/// Golden images stay golden wherever their clones live (issue 10, section 2): a linked clone seals its parent, and no
/// write verb changes a sealed image until the user unseals it (or forces a write), whatever folder the children are in.
/// Exit codes: 15 ReadOnly, 10 ParentMismatch.
/// </summary>
public class GoldenImageTests
{
    private const int ExitReadOnly = 15, ExitParentMismatch = 10;

    private static Task<CliResult> Ok(params string[] args) => CliRunner.OkAsync(args);

    private static async Task<string> Input(TempDirectory dir, string name, int length, int seed)
    {
        await File.WriteAllBytesAsync(dir.File(name), RandomData.Bytes(length, seed));
        return dir.File(name);
    }

    private static Task<JsonElement> Info(string image) => CliRunner.InfoAsync(image);

    /// <summary>The lab: templates/golden, a clone in vms/a/. Before this change `dse write` of the golden returned 0 and broke the clone.</summary>
    [Theory]
    [InlineData("vhdx")]
    [InlineData("vdi")]
    public async Task A_golden_image_whose_clone_lives_in_another_folder_is_refused_even_as_root_with_mode_444(string ext)
    {
        using var dir = new TempDirectory("golden-lab");
        var (golden, clone) = await CliRunner.GoldenLabAsync(dir, ext, "16M", 100_000, 1);
        var version = (await Info(golden)).GetProperty("identity").GetProperty("version").GetString();
        await Ok("create", clone, "--parent", golden);

        var info = await Info(golden);
        Assert.True(info.GetProperty("sealed").GetBoolean());
        Assert.Equal(new[] { "golden" }, info.GetProperty("seal").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal(version, info.GetProperty("identity").GetProperty("version").GetString()); // sealing kept the version
        Assert.Contains("sealed:", (await Ok("info", golden)).StdOut);

        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(golden, UnixFileMode.UserRead | UnixFileMode.GroupRead | UnixFileMode.OtherRead); // chmod 444: nothing to root
        var before = await File.ReadAllBytesAsync(golden);
        var refused = await CliRunner.RunAsync("write", golden, "--offset", "0", "--input", await Input(dir, "x.bin", 512, 2));
        Assert.Equal(ExitReadOnly, refused.ExitCode);
        Assert.Contains("sealed", refused.StdErr);
        Assert.Contains("dse unseal", refused.StdErr);
        Assert.Equal(before, await File.ReadAllBytesAsync(golden));
        await Ok("check", clone);

        // --force is the user's explicit override: the write goes through and the clone then sees a changed parent.
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(golden, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        await Ok("write", golden, "--offset", "0", "--input", dir.File("x.bin"), "--force");
        Assert.Equal(ExitParentMismatch, (await CliRunner.RunAsync("check", clone)).ExitCode);
    }

    [Fact]
    public async Task Clone_linked_seals_its_parent_and_seal_unseal_are_explicit_and_keep_children_linked()
    {
        using var dir = new TempDirectory("golden-verbs");
        string golden = dir.File("g.vdi"), clone = dir.File("sub/c.vdi");
        Directory.CreateDirectory(dir.File("sub"));
        await Ok("create", golden, "--size", "8M");
        Assert.False((await Info(golden)).GetProperty("sealed").GetBoolean());
        await Ok("clone", "--linked", golden, clone);
        Assert.True((await Info(golden)).GetProperty("sealed").GetBoolean());

        var unsealed = JsonDocument.Parse((await Ok("unseal", golden, "--json")).StdOut).RootElement;
        Assert.False(unsealed.GetProperty("sealed").GetBoolean());
        Assert.Equal("golden", unsealed.GetProperty("was")[0].GetString());
        Assert.False((await Info(golden)).GetProperty("sealed").GetBoolean());
        await Ok("check", clone); // unsealing writes only the mark: the clone still opens

        await Ok("write", golden, "--offset", "0", "--input", await Input(dir, "w.bin", 4096, 3)); // unsealed: allowed
        Assert.Equal(ExitParentMismatch, (await CliRunner.RunAsync("check", clone)).ExitCode);

        Assert.Contains("sealed", (await Ok("seal", golden)).StdOut);
        Assert.Contains("already sealed", (await Ok("seal", golden)).StdOut);
        Assert.Equal(ExitReadOnly, (await CliRunner.RunAsync("write", golden, "--offset", "0", "--input", dir.File("w.bin"))).ExitCode);
        Assert.Equal(5, (await CliRunner.RunAsync("seal", (await MakeRaw(dir)))).ExitCode); // raw carries no seal: Unsupported
    }

    private static async Task<string> MakeRaw(TempDirectory dir)
    {
        await Ok("create", dir.File("r.img"), "--size", "1M");
        return dir.File("r.img");
    }

    /// <summary>
    /// Merge into a sealed ancestor is refused with the reason, whatever folder the children are in; after unseal it runs.
    /// (Two clones: the seal of a golden with one clone records it, and merging that one back is allowed, see SoleCloneMergeTests.)
    /// </summary>
    [Theory]
    [InlineData("vhdx")]
    [InlineData("vdi")]
    [InlineData("qcow2")]
    public async Task Merge_into_a_sealed_parent_is_refused_until_unsealed(string ext)
    {
        using var dir = new TempDirectory("golden-merge");
        string golden = dir.File($"g.{ext}"), child = dir.File($"elsewhere/c.{ext}");
        Directory.CreateDirectory(dir.File("elsewhere"));
        Directory.CreateDirectory(dir.File("other"));
        await Ok("create", golden, "--size", "8M");
        await Ok("create", child, "--parent", golden);
        await Ok("create", dir.File($"other/c2.{ext}"), "--parent", golden);
        await Ok("write", child, "--offset", "1M", "--input", await Input(dir, "c.bin", 70_000, 4));
        var goldenBefore = await File.ReadAllBytesAsync(golden);
        var childBefore = await File.ReadAllBytesAsync(child);

        var refused = await CliRunner.RunAsync("merge", child);
        Assert.Equal(ExitReadOnly, refused.ExitCode);
        Assert.Contains("merge into it", refused.StdErr);
        Assert.Contains(golden, refused.StdErr);
        Assert.Equal(goldenBefore, await File.ReadAllBytesAsync(golden));
        Assert.Equal(childBefore, await File.ReadAllBytesAsync(child));
        Assert.False(File.Exists(child + ".dse-journal.json"));


        await Ok("unseal", golden);
        await Ok("merge", child);
        Assert.False(File.Exists(child));
    }

    [Theory]
    [InlineData("vhdx")]
    [InlineData("vdi")]
    [InlineData("qcow2")]
    public async Task Merge_force_merges_into_a_sealed_parent_which_stays_sealed(string ext)
    {
        using var dir = new TempDirectory("golden-merge");
        string golden = dir.File($"g.{ext}"), child = dir.File($"c.{ext}");
        await Ok("create", golden, "--size", "8M");
        await Ok("seal", golden); // sealed by the user: no sole clone is recorded, so the merge needs --force
        await Ok("create", child, "--parent", golden);
        await Ok("write", child, "--offset", "1M", "--input", await Input(dir, "c.bin", 70_000, 5));
        await Ok("export", child, dir.File("before.img"));
        Assert.Equal(ExitReadOnly, (await CliRunner.RunAsync("merge", child)).ExitCode);

        await Ok("merge", child, "--force");
        Assert.False(File.Exists(child));
        await Ok("export", golden, dir.File("after.img"));
        Assert.Equal(ContentHash.OfFile(dir.File("before.img")), ContentHash.OfFile(dir.File("after.img")));
        // The force was for this merge only: other clones may still read through it.
        Assert.True((await Info(golden)).GetProperty("sealed").GetBoolean());
        await Ok("check", golden);
    }

    /// <summary>
    /// The lab with qcow2 golden images: the seal is dse's own header extension, which qemu-img check accepts and
    /// qemu keeps when it rewrites the header (amend); QEMU reads the clone through the sealed parent as dse does.
    /// </summary>
    [RequiresToolFact("qemu-img")]
    public async Task A_qcow2_golden_image_is_sealed_in_a_header_extension_that_qemu_keeps()
    {
        using var dir = new TempDirectory("golden-qcow2");
        var (golden, clone) = await CliRunner.GoldenLabAsync(dir, "qcow2", "16M", 100_000, 1);
        await Ok("create", clone, "--parent", golden);
        Assert.True((await Info(golden)).GetProperty("sealed").GetBoolean());
        ExternalTool.RunChecked("qemu-img", "check", golden);

        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(golden, UnixFileMode.UserRead | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        var before = await File.ReadAllBytesAsync(golden);
        var refused = await CliRunner.RunAsync("write", golden, "--offset", "0", "--input", await Input(dir, "x.bin", 512, 2));
        Assert.Equal(ExitReadOnly, refused.ExitCode);
        Assert.Contains("sealed", refused.StdErr);
        Assert.Equal(before, await File.ReadAllBytesAsync(golden));

        // QEMU reads the clone through the sealed parent exactly as dse does.
        await Ok("write", clone, "--offset", "4M", "--input", dir.File("x.bin"));
        await Ok("export", clone, dir.File("dse.raw"));
        ExternalTool.RunChecked("qemu-img", "compare", "-f", "qcow2", "-F", "raw", clone, dir.File("dse.raw"));

        // A header rewrite by qemu keeps the extension it does not know (qcow2.txt: unknown extensions are kept).
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(golden, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        ExternalTool.RunChecked("qemu-img", "amend", "-f", "qcow2", "-o", "lazy_refcounts=on", golden);
        Assert.True((await Info(golden)).GetProperty("sealed").GetBoolean());
        await Ok("unseal", golden);
        Assert.False((await Info(golden)).GetProperty("sealed").GetBoolean());
        ExternalTool.RunChecked("qemu-img", "check", golden);
    }

    /// <summary>A VHD has no field for the mark: seal is refused (exit 5) with the reason, and a linked clone says the parent stays unprotected.</summary>
    [Fact]
    public async Task A_vhd_cannot_be_sealed_and_says_why()
    {
        using var dir = new TempDirectory("golden-vhd");
        string golden = dir.File("g.vhd");
        await Ok("create", golden, "--size", "8M");
        var before = await File.ReadAllBytesAsync(golden);
        var refused = await CliRunner.RunAsync("seal", golden);
        Assert.Equal(5, refused.ExitCode);
        Assert.Contains("VHD cannot carry dse's seal", refused.StdErr);
        Assert.Equal(before, await File.ReadAllBytesAsync(golden));
        var made = await Ok("create", dir.File("c.vhd"), "--parent", golden);
        Assert.Contains("is not sealed", made.StdErr);
        Assert.False((await Info(golden)).GetProperty("sealed").GetBoolean());
    }

    [Fact]
    public async Task Pull_and_rebase_refuse_a_sealed_image_and_compact_keeps_it_sealed_and_linked()
    {
        using var dir = new TempDirectory("golden-pull");
        string b = dir.File("b.vhdx"), mid = dir.File("mid.vhdx"), top = dir.File("top.vhdx");
        await Ok("create", b, "--size", "8M");
        await Ok("create", mid, "--parent", b);
        await Ok("write", mid, "--offset", "0", "--input", await Input(dir, "m.bin", 2 << 20, 5));
        await Ok("create", top, "--parent", mid); // seals mid
        var midBefore = await File.ReadAllBytesAsync(mid);
        Assert.Equal(ExitReadOnly, (await CliRunner.RunAsync("merge", "--pull", mid)).ExitCode);
        await Ok("create", dir.File("other.vhdx"), "--size", "8M");
        Assert.Equal(ExitReadOnly, (await CliRunner.RunAsync("rebase", mid, "--parent", dir.File("other.vhdx"))).ExitCode);
        Assert.Equal(midBefore, await File.ReadAllBytesAsync(mid));

        // Compact keeps every reader's view: allowed, and the rewritten file is as sealed as before, with the same version.
        var version = (await Info(mid)).GetProperty("identity").GetProperty("version").GetString();
        await Ok("compact", mid);
        var after = await Info(mid);
        Assert.True(after.GetProperty("sealed").GetBoolean());
        Assert.Equal(version, after.GetProperty("identity").GetProperty("version").GetString());
        await Ok("check", top);
    }

    /// <summary>
    /// dse's own snapshot layers are sealed too (as snapshot layers), so plain verbs leave them alone, yet snapshot delete
    /// and revert keep working on them. A layer that is also a golden image (a clone was made of it elsewhere) is not
    /// deleted, and the disk, once a snapshot layer has been merged into its place, is writable again.
    /// </summary>
    [Theory]
    [InlineData("vhdx")]
    [InlineData("vdi")]
    public async Task Snapshot_layers_are_sealed_yet_snapshot_delete_and_revert_work_on_them(string ext)
    {
        using var dir = new TempDirectory("golden-snap");
        string disk = dir.File($"vm.{ext}");
        await Ok("create", disk, "--size", "8M");
        await Ok("write", disk, "--offset", "0", "--input", await Input(dir, "a.bin", 300_000, 7));
        await Ok("snapshot", "create", disk, "--name", "s1");
        var catalog = DiskSnapshots.Catalog(disk);
        string layer = DiskSnapshots.PathOf(disk, catalog.Snapshots[0]);
        var layerInfo = await Info(layer);
        Assert.Equal(new[] { "snapshot" }, layerInfo.GetProperty("seal").EnumerateArray().Select(e => e.GetString()));
        Assert.False((await Info(disk)).GetProperty("sealed").GetBoolean());
        Assert.Equal(ExitReadOnly, (await CliRunner.RunAsync("write", layer, "--offset", "0", "--input", dir.File("a.bin"))).ExitCode);

        await Ok("write", disk, "--offset", "4096", "--input", await Input(dir, "b.bin", 5000, 8));
        await Ok("snapshot", "revert", disk, "--name", "s1");
        await Ok("write", disk, "--offset", "8192", "--input", dir.File("b.bin"));
        var expected = (await Ok("export", disk, "-")).StdOutBytes;

        // Delete merges the base snapshot layer into the disk's place (commit): the result is the live disk, unsealed.
        await Ok("snapshot", "delete", disk, "--name", "s1");
        Assert.Equal(expected, (await Ok("export", disk, "-")).StdOutBytes);
        Assert.False((await Info(disk)).GetProperty("sealed").GetBoolean());
        await Ok("write", disk, "--offset", "0", "--input", dir.File("b.bin"));

        // A snapshot layer that a linked clone (anywhere) reads through is golden too: snapshot delete refuses it.
        await Ok("snapshot", "create", disk, "--name", "s2");
        string layer2 = DiskSnapshots.PathOf(disk, DiskSnapshots.Catalog(disk).Snapshots.Single(s => s.Name == "s2"));
        Directory.CreateDirectory(dir.File("far"));
        await Ok("clone", "--linked", layer2, dir.File($"far/clone.{ext}"));
        Assert.Equal(new[] { "golden", "snapshot" }, (await Info(layer2)).GetProperty("seal").EnumerateArray().Select(e => e.GetString()).Order());
        var refused = await CliRunner.RunAsync("snapshot", "delete", disk, "--name", "s2");
        Assert.Equal(ExitReadOnly, refused.ExitCode);
        Assert.Contains("golden", refused.StdErr);
        Assert.True(File.Exists(layer2));
        await Ok("check", dir.File($"far/clone.{ext}"));
    }

    [Fact]
    public async Task Revert_refuses_to_discard_a_current_state_that_is_a_golden_image()
    {
        using var dir = new TempDirectory("golden-revert");
        string disk = dir.File("vm.vdi");
        await Ok("create", disk, "--size", "8M");
        await Ok("snapshot", "create", disk, "--name", "s1");
        Directory.CreateDirectory(dir.File("far"));
        await Ok("clone", "--linked", disk, dir.File("far/c.vdi")); // the live disk becomes a golden image
        var refused = await CliRunner.RunAsync("snapshot", "revert", disk, "--name", "s1");
        Assert.Equal(ExitReadOnly, refused.ExitCode);
        Assert.Contains("discard the current state", refused.StdErr);
        await Ok("check", dir.File("far/c.vdi"));
    }
}
