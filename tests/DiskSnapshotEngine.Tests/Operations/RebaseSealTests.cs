using System.Runtime.Versioning;
using System.Text.Json;
using DiskSnapshotEngine.Cli;
using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;
using DiskSnapshotEngine.Operations;
using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Operations;

/// <summary>A rebased image reads through its new parent as a linked clone does, so the new parent is sealed like one.</summary>
[UnsupportedOSPlatform("windows")]
public class RebaseSealTests
{
    [Fact]
    public async Task The_new_parent_is_sealed_and_a_write_to_it_is_refused_wherever_the_child_lives()
    {
        using var dir = new TempDirectory("rebase-seal");
        Directory.CreateDirectory(dir.File("vms"));
        string a = dir.File("a.vhdx"), b = dir.File("b.vhdx"), child = dir.File("vms/c.qcow2"), input = dir.File("in.bin");
        await CliRunner.OkAsync("create", a, "--size", "16M");
        await CliRunner.OkAsync("create", b, "--size", "16M");
        await CliRunner.OkAsync("create", child, "--parent", a);
        File.WriteAllBytes(input, RandomData.Bytes(4096, 2));

        var rebase = await CliRunner.OkAsync("rebase", child, "--parent", b);
        Assert.Equal("", rebase.StdErr);
        var seal = (await CliRunner.InfoAsync(b)).GetProperty("seal").EnumerateArray().Select(e => e.GetString());
        Assert.Equal(["golden"], seal);
        // The child is in another folder, so only the seal stops a write that would change what it reads.
        string hash = ContentHash.OfFile(b);
        var write = await CliRunner.RunAsync("write", b, "--offset", "0", "--input", input);
        Assert.True(write.ExitCode == ExitCodes.ForKind(ErrorKind.ReadOnly) && write.StdErr.Contains("sealed"), write.ToString());
        Assert.Equal(hash, ContentHash.OfFile(b));
    }

    [LinuxFact]
    public async Task Rebasing_onto_a_parent_with_a_sole_clone_makes_the_record_unknown_so_merging_that_clone_is_refused()
    {
        using var dir = new TempDirectory("rebase-sole");
        Directory.CreateDirectory(dir.File("vms"));
        string golden = dir.File("golden.vhdx"), sole = dir.File("sole.vhdx"), other = dir.File("other.vhdx"), child = dir.File("vms/c.vhdx");
        await CliRunner.OkAsync("create", golden, "--size", "16M");
        File.SetUnixFileMode(golden, UnixFileMode.UserRead | UnixFileMode.UserWrite); // private: the clone is recorded
        await CliRunner.OkAsync("clone", "--linked", golden, sole); // recorded as the golden's only clone
        await CliRunner.OkAsync("create", other, "--size", "16M");
        await CliRunner.OkAsync("create", child, "--parent", other);
        Assert.Equal(JsonValueKind.String, (await CliRunner.InfoAsync(golden)).GetProperty("soleChild").ValueKind);

        var rebase = await CliRunner.OkAsync("rebase", child, "--parent", golden);
        Assert.Equal("", rebase.StdErr);
        Assert.Equal(JsonValueKind.Null, (await CliRunner.InfoAsync(golden)).GetProperty("soleChild").ValueKind);
        // The rebased image reads through the golden from another folder: only the seal can stop the merge.
        string hash = ContentHash.OfFile(golden);
        var merge = await CliRunner.RunAsync("merge", sole);
        Assert.True(merge.ExitCode == ExitCodes.ForKind(ErrorKind.ReadOnly) && merge.StdErr.Contains("sealed"), merge.ToString());
        Assert.Equal(hash, ContentHash.OfFile(golden));
    }

    [Theory]
    [InlineData(ErrorKind.Locked, "another process has it open")]
    [InlineData(ErrorKind.Io, "the disk went away")]
    public async Task A_seal_that_cannot_be_written_after_the_relink_leaves_it_unsealed_and_the_rebase_stands(ErrorKind kind, string why)
    {
        using var dir = new TempDirectory("rebase-seal-fails");
        string a = dir.File("a.vhdx"), b = dir.File("b.vhdx"), child = dir.File("c.vhdx");
        await CliRunner.OkAsync("create", a, "--size", "16M");
        await CliRunner.OkAsync("create", b, "--size", "16M");
        await CliRunner.OkAsync("create", child, "--parent", a);
        var open = OpenOptions.ReadOnly.FileOpener;
        // Only the seal's write fails: the relink (which opens b read-only and the child for writing) goes through.
        Func<string, bool, IImageFile> opener = (path, writable) => writable && path == b
            ? throw new DiskImageException(kind, "the disk went away", path)
            : open(path, writable);

        var result = await Rebase.RunAsync(child, b, options: OpenOptions.ReadOnly with { FileOpener = opener });
        Assert.Equal(new ParentSeal(b, ImageFormat.Vhdx, ParentSealOutcome.SealFailed, why), result.NewParentSeal);
        using (var chain = DiskImage.Open(child)) Assert.Equal(b, chain.Layers[1].Path);
        using var layer = DiskImage.OpenLayer(b, writable: false);
        Assert.Equal(SealReasons.None, Seals.Of(layer));
    }

    [Fact]
    public async Task A_new_parent_another_process_holds_gets_the_note_to_seal_it_not_the_unwritable_one()
    {
        using var dir = new TempDirectory("rebase-seal-held");
        string a = dir.File("a.vhdx"), b = dir.File("new parent.vhdx"), child = dir.File("c.vhdx");
        await CliRunner.OkAsync("create", a, "--size", "16M");
        await CliRunner.OkAsync("create", b, "--size", "16M");
        await CliRunner.OkAsync("create", child, "--parent", a);
        // A reader's shared lock lets the relink read b but keeps the seal's exclusive open out.
        CliResult rebase;
        using (DiskImage.Open(b)) rebase = await CliRunner.OkAsync("rebase", child, "--parent", b);
        var note = Assert.Single(rebase.StdErr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains($"{b} was not sealed (another process has it open); stop the process that holds it, then run: dse seal '{b}'", note);
        Assert.DoesNotContain("exit 15", note);
    }

    [Fact]
    public async Task The_new_parent_is_opened_once_to_read_and_once_to_write_its_seal()
    {
        using var dir = new TempDirectory("rebase-seal-opens");
        string a = dir.File("a.vhdx"), b = dir.File("b.vhdx"), child = dir.File("c.vhdx");
        await CliRunner.OkAsync("create", a, "--size", "16M");
        await CliRunner.OkAsync("create", b, "--size", "16M");
        await CliRunner.OkAsync("create", child, "--parent", a);
        var open = OpenOptions.ReadOnly.FileOpener;
        var opens = new List<bool>();
        Func<string, bool, IImageFile> opener = (path, writable) =>
        {
            if (path == b) opens.Add(writable);
            return open(path, writable);
        };

        var result = await Rebase.RunAsync(child, b, options: OpenOptions.ReadOnly with { FileOpener = opener });
        Assert.Equal(ParentSealOutcome.Sealed, result.NewParentSeal.Outcome);
        Assert.Equal([false, true], opens);
    }

    [LinuxFact]
    public async Task Rebasing_the_sole_clone_away_turns_its_old_parents_record_unknown()
    {
        using var dir = new TempDirectory("rebase-old-sole");
        string golden = dir.File("golden.vhdx"), other = dir.File("other.vhdx"), clone = dir.File("c.vhdx");
        await CliRunner.OkAsync("create", golden, "--size", "16M");
        File.SetUnixFileMode(golden, UnixFileMode.UserRead | UnixFileMode.UserWrite); // private: the clone is recorded
        await CliRunner.OkAsync("create", other, "--size", "16M");
        await CliRunner.OkAsync("clone", "--linked", golden, clone);
        Assert.Equal(JsonValueKind.String, (await CliRunner.InfoAsync(golden)).GetProperty("soleChild").ValueKind);

        await CliRunner.OkAsync("rebase", clone, "--parent", other);
        var info = await CliRunner.InfoAsync(golden);
        Assert.True(info.GetProperty("sealed").GetBoolean());
        Assert.Equal(JsonValueKind.Null, info.GetProperty("soleChild").ValueKind);
    }
}
