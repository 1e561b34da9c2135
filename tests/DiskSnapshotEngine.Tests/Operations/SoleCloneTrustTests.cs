using System.Buffers.Binary;
using System.Runtime.Versioning;
using System.Text.Json;
using DiskSnapshotEngine.IO;
using DiskSnapshotEngine.Operations;
using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Operations;

/// <summary>
/// A sole clone is trusted only while nobody may read the parent without being allowed to write it (its mode: group-
/// or other-readable needs group- or other-writable; an access ACL counts as shared): such a reader's linked clones
/// cannot record themselves in the seal, so the record would call a clone the only one when it is not.
/// </summary>
[UnsupportedOSPlatform("windows")]
public class SoleCloneTrustTests
{
    private const int ExitReadOnly = 15;
    private const UnixFileMode Private = UnixFileMode.UserRead | UnixFileMode.UserWrite; // 0600
    private const UnixFileMode Readable = Private | UnixFileMode.GroupRead | UnixFileMode.OtherRead; // 0644

    private const UnixFileMode Searchable = (UnixFileMode)0x1ED; // 0755: others may enter (/ and /tmp are o+x too)
    private const UnixFileMode Closed = (UnixFileMode)0x1C0; // 0700: only the owner enters

    private static async Task<string> Golden(TempDirectory dir, string name, UnixFileMode mode)
    {
        string golden = dir.File(name);
        await CliRunner.OkAsync("create", golden, "--size", "8M");
        await CliRunner.OkAsync("write", golden, "--offset", "0", "--input", Input(dir, 1));
        File.SetUnixFileMode(golden, mode);
        return golden;
    }

    private static string Input(TempDirectory dir, int seed)
    {
        string path = dir.File($"in-{seed}.bin");
        File.WriteAllBytes(path, RandomData.Bytes(200_000, seed));
        return path;
    }

    private static async Task<JsonValueKind> SoleChildKind(string image) => (await CliRunner.InfoAsync(image)).GetProperty("soleChild").ValueKind;

    [LinuxFact]
    public async Task Only_a_golden_nobody_else_may_read_records_its_first_clone_as_the_sole_one()
    {
        using var dir = new TempDirectory("sole-trust-record");
        File.SetUnixFileMode(dir.Path, Searchable); // the rule looks at the folders too
        var modes = new (string Name, UnixFileMode Mode, bool Recorded)[]
        {
            ("shared.vhdx", Readable, false),
            ("group.vdi", Private | UnixFileMode.GroupRead, false), // 0640
            ("private.qcow2", Private, true),
            ("team.vhdx", Private | UnixFileMode.GroupRead | UnixFileMode.GroupWrite, true), // 0660: every reader may write
        };
        foreach (var (name, mode, recorded) in modes)
        {
            string golden = await Golden(dir, name, mode);
            await CliRunner.OkAsync("clone", "--linked", golden, dir.File("clone-" + name));
            Assert.True((await CliRunner.InfoAsync(golden)).GetProperty("sealed").GetBoolean(), name);
            Assert.True((recorded ? JsonValueKind.String : JsonValueKind.Null) == await SoleChildKind(golden), name);
        }
    }

    [LinuxFact]
    public async Task A_posix_acl_counts_as_shared()
    {
        using var dir = new TempDirectory("sole-trust-acl");
        File.SetUnixFileMode(dir.Path, Searchable); // the rule looks at the folders too
        string golden = await Golden(dir, "g.vhdx", Private | UnixFileMode.GroupRead | UnixFileMode.GroupWrite);
        // 0660 with nobody (65534) allowed to read: user::rw- user:65534:r-- group::rw- mask::rw- other::---
        // (acl_ea_header version 2, then tag, perm, id per entry; linux/posix_acl_xattr.h).
        var acl = new byte[4 + 5 * 8];
        BinaryPrimitives.WriteUInt32LittleEndian(acl, 2);
        (ushort Tag, ushort Perm, uint Id)[] entries = [(1, 6, uint.MaxValue), (2, 4, 65534), (4, 6, uint.MaxValue), (0x10, 6, uint.MaxValue), (0x20, 0, uint.MaxValue)];
        for (int i = 0; i < entries.Length; i++)
        {
            var e = acl.AsSpan(4 + 8 * i);
            BinaryPrimitives.WriteUInt16LittleEndian(e, entries[i].Tag);
            BinaryPrimitives.WriteUInt16LittleEndian(e[2..], entries[i].Perm);
            BinaryPrimitives.WriteUInt32LittleEndian(e[4..], entries[i].Id);
        }
        Assert.True(Libc.SetXattr(golden, "system.posix_acl_access", ref acl[0], (nuint)acl.Length, 0) == 0, "setxattr of the ACL");
        Assert.Equal("mode 0660 and a POSIX ACL in folders others can enter", FileNode.ReadableByNonWriters(golden));

        await CliRunner.OkAsync("clone", "--linked", golden, dir.File("c.vhdx"));
        Assert.Equal(JsonValueKind.Null, await SoleChildKind(golden));
    }

    [LinuxFact]
    public async Task A_private_goldens_sole_clone_merges_back_without_unseal()
    {
        using var dir = new TempDirectory("sole-trust-merge");
        string golden = await Golden(dir, "g.vhdx", Private), clone = dir.File("c.vhdx");
        await CliRunner.OkAsync("clone", "--linked", golden, clone);
        await CliRunner.OkAsync("write", clone, "--offset", "1M", "--input", Input(dir, 2));

        var merged = await CliRunner.OkAsync("merge", clone);
        Assert.Contains($"unsealed {golden}", merged.StdOut);
        Assert.False((await CliRunner.InfoAsync(golden)).GetProperty("sealed").GetBoolean());
    }

    [LinuxFact]
    public async Task A_golden_made_readable_after_its_clone_refuses_the_merge_and_stays_as_it_was()
    {
        using var dir = new TempDirectory("sole-trust-chmod");
        File.SetUnixFileMode(dir.Path, Searchable); // the rule looks at the folders too
        string golden = await Golden(dir, "g.vhdx", Private), clone = dir.File("c.vhdx");
        await CliRunner.OkAsync("clone", "--linked", golden, clone);
        await CliRunner.OkAsync("write", clone, "--offset", "1M", "--input", Input(dir, 2));
        File.SetUnixFileMode(golden, Readable);
        string goldenHash = ContentHash.OfFile(golden), cloneHash = ContentHash.OfFile(clone);

        var refused = await CliRunner.RunAsync("merge", clone);
        Assert.True(refused.ExitCode == ExitReadOnly, refused.ToString());
        Assert.Contains($"is sealed and readable by other users (mode 0644 in folders others can enter), who may have linked clones dse cannot see; unseal it first if no linked clone reads through it: dse unseal {golden}, or merge --force",
            Assert.Single(refused.StdErr.Split('\n', StringSplitOptions.RemoveEmptyEntries)));
        Assert.Equal(goldenHash, ContentHash.OfFile(golden));
        Assert.Equal(cloneHash, ContentHash.OfFile(clone));

        // --force is this merge's waiver: it runs, and the seal (not trusted to be the last clone's) stays.
        await CliRunner.OkAsync("merge", clone, "--force");
        Assert.True((await CliRunner.InfoAsync(golden)).GetProperty("sealed").GetBoolean());
    }

    [LinuxFact]
    public async Task A_readable_golden_in_a_folder_nobody_else_enters_is_private()
    {
        using var dir = new TempDirectory("sole-trust-closed");
        File.SetUnixFileMode(dir.Path, Closed); // a `mktemp -d` folder or a 0700 home
        string golden = await Golden(dir, "g.vhdx", Readable), clone = dir.File("c.vhdx");
        Assert.Null(FileNode.ReadableByNonWriters(golden));
        await CliRunner.OkAsync("clone", "--linked", golden, clone);
        Assert.Equal(JsonValueKind.String, await SoleChildKind(golden));
        await CliRunner.OkAsync("write", clone, "--offset", "1M", "--input", Input(dir, 2));

        var merged = await CliRunner.OkAsync("merge", clone);
        Assert.Contains($"unsealed {golden}", merged.StdOut);
        Assert.False((await CliRunner.InfoAsync(golden)).GetProperty("sealed").GetBoolean());
    }

    [LinuxFact]
    public async Task A_readable_golden_whose_folders_others_may_enter_records_no_sole_clone()
    {
        using var dir = new TempDirectory("sole-trust-open");
        File.SetUnixFileMode(dir.Path, Searchable); // the rule looks at the folders too
        string golden = await Golden(dir, "g.vhdx", Readable), clone = dir.File("c.vhdx");
        Assert.Equal("mode 0644 in folders others can enter", FileNode.ReadableByNonWriters(golden));
        await CliRunner.OkAsync("clone", "--linked", golden, clone);
        Assert.Equal(JsonValueKind.Null, await SoleChildKind(golden));
        var refused = await CliRunner.RunAsync("merge", clone);
        Assert.True(refused.ExitCode == ExitReadOnly && refused.StdErr.Contains("sealed"), refused.ToString());
    }

    [LinuxFact]
    public async Task A_folder_opened_after_the_clone_refuses_the_merge_and_leaves_both_as_they_were()
    {
        using var dir = new TempDirectory("sole-trust-reopen");
        File.SetUnixFileMode(dir.Path, Closed);
        string golden = await Golden(dir, "g.vhdx", Readable), clone = dir.File("c.vhdx");
        await CliRunner.OkAsync("clone", "--linked", golden, clone);
        Assert.Equal(JsonValueKind.String, await SoleChildKind(golden));
        await CliRunner.OkAsync("write", clone, "--offset", "1M", "--input", Input(dir, 2));
        File.SetUnixFileMode(dir.Path, Searchable);
        string goldenHash = ContentHash.OfFile(golden), cloneHash = ContentHash.OfFile(clone);

        var refused = await CliRunner.RunAsync("merge", clone);
        Assert.True(refused.ExitCode == ExitReadOnly, refused.ToString());
        Assert.Contains("is sealed and readable by other users (mode 0644 in folders others can enter)", refused.StdErr);
        Assert.Equal(goldenHash, ContentHash.OfFile(golden));
        Assert.Equal(cloneHash, ContentHash.OfFile(clone));
    }

    [RootFact("makes a linked clone as nobody through setpriv")]
    public async Task A_users_clone_of_roots_golden_keeps_roots_later_clone_from_merging_back_unasked()
    {
        using var dir = new TempDirectory("sole-trust-users");
        File.SetUnixFileMode(dir.Path, (UnixFileMode)0x1FF); // 0777: nobody reaches its folder through it
        // The user's clone lives in its own folder: only the seal can stop root's merge.
        Directory.CreateDirectory(dir.File("users"));
        File.SetUnixFileMode(dir.File("users"), (UnixFileMode)0x1FF);
        string golden = await Golden(dir, "g.vhdx", Readable), userClone = dir.File("users/user.vhdx"), rootClone = dir.File("root.vhdx");

        var (code, _, stderr) = CliRunner.RunAsNobody("clone", "--linked", golden, userClone);
        Assert.True(code == 0, stderr);
        Assert.False((await CliRunner.InfoAsync(golden)).GetProperty("sealed").GetBoolean()); // nobody could not seal it
        await CliRunner.OkAsync("clone", "--linked", golden, rootClone);
        Assert.Equal(JsonValueKind.Null, await SoleChildKind(golden));
        await CliRunner.OkAsync("write", rootClone, "--offset", "1M", "--input", Input(dir, 2));
        string goldenHash = ContentHash.OfFile(golden);

        var refused = await CliRunner.RunAsync("merge", rootClone);
        Assert.True(refused.ExitCode == ExitReadOnly && refused.StdErr.Contains("sealed"), refused.ToString());
        Assert.Equal(goldenHash, ContentHash.OfFile(golden));
        (code, _, stderr) = CliRunner.RunAsNobody("check", userClone);
        Assert.True(code == 0, stderr);
    }
    [LinuxFact]
    public async Task A_merge_cut_after_its_journal_finishes_on_rerun_even_if_the_golden_was_made_readable_since()
    {
        using var dir = new TempDirectory("sole-trust-resume");
        string golden = await Golden(dir, "g.vhdx", Private), clone = dir.File("c.vhdx");
        await CliRunner.OkAsync("clone", "--linked", golden, clone);
        await CliRunner.OkAsync("write", clone, "--offset", "1M", "--input", Input(dir, 2));
        string expected;
        using (var before = DiskImage.Open(clone)) expected = ContentHash.Of(before);
        var open = OpenOptions.ReadOnly.FileOpener;
        // The copy's first write to the golden fails as if the process died there: the journal is on disk.
        Func<string, bool, IImageFile> cut = (path, writable) => writable && path == golden
            ? throw new IOException("killed")
            : open(path, writable);
        await Assert.ThrowsAnyAsync<Exception>(() => Merge.CommitAsync(clone, null, new MergeOptions { Open = OpenOptions.ReadOnly with { FileOpener = cut } }));
        Assert.True(File.Exists(clone));
        File.SetUnixFileMode(golden, Readable);

        var rerun = await CliRunner.RunAsync("merge", clone);
        Assert.True(rerun.ExitCode == 0, rerun.ToString());
        Assert.False(File.Exists(clone));
        using var merged = DiskImage.Open(golden);
        Assert.Equal(expected, ContentHash.Of(merged));
    }
}
