using System.Text.Json;
using System.Security.Cryptography;
using DiskSnapshotEngine.Cli;
using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.IO;

/// <summary>
/// A verb that writes through a user-given symbolic link renames its new file over the link's target itself, which
/// fs.protected_symlinks (an open(2) check) does not guard: dse applies the kernel's rule. In a sticky world-writable
/// folder a link another user owns is refused (ReadOnly, exit 15) and nothing is written, its target nor beside it.
/// </summary>
public class ProtectedSymlinkTests
{
    [RootFact("owns a link by nobody in a sticky folder")]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public async Task Root_does_not_follow_another_users_link_in_a_sticky_folder()
    {
        using var dir = new TempDirectory("sticky");
        string image = dir.File("d.vhdx"), sticky = StickyFolder(dir);
        Assert.Equal(0, (await CliRunner.RunAsync("create", image, "--size", "4M")).ExitCode);
        string secret = dir.File("secret"), dangling = dir.File("elsewhere.raw");
        File.WriteAllText(secret, "root only");
        File.SetUnixFileMode(secret, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        byte[] before = SHA256.HashData(File.ReadAllBytes(secret));

        foreach (var (name, target) in new[] { ("out.raw", secret), ("new.raw", dangling) })
        {
            string link = Path.Combine(sticky, name);
            File.CreateSymbolicLink(link, target);
            Assert.Equal(0, ExternalTool.Run("chown", "-h", "nobody", link).ExitCode);
            var r = await CliRunner.RunAsync("export", image, link, "--force");
            Assert.True(r.ExitCode == 15, $"{name}: {r}");
            Assert.Contains(link, r.StdErr);
            Assert.Equal(before, SHA256.HashData(File.ReadAllBytes(secret)));
            Assert.False(File.Exists(dangling), "a dangling link made root create its target");
            Assert.Empty(Directory.GetFiles(dir.Path, "*.dse-*"));
            Assert.True(new FileInfo(link).LinkTarget == target, "the link was replaced");
        }
    }

    // A folder nobody reaches (0777) holding a sticky folder and "big", a plain folder for nobody's moved files.
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    private static (TempDirectory Dir, string Sticky, string Big) StickyAndBig(string name)
    {
        var dir = new TempDirectory(name);
        File.SetUnixFileMode(dir.Path, (UnixFileMode)0x1FF);
        return (dir, StickyFolder(dir), Directory.CreateDirectory(dir.File("big")).FullName);
    }

    // A folder like /tmp (mode 1777: world-writable and sticky) in the test's folder.
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    private static string StickyFolder(TempDirectory dir)
    {
        string sticky = Directory.CreateDirectory(dir.File("tmp")).FullName;
        File.SetUnixFileMode(sticky, (UnixFileMode)Convert.ToInt32("1777", 8));
        return sticky;
    }

    // fs.protected_symlinks (0 here, 1 by default on most distributions): under 1 the kernel itself refuses root's open
    // of another user's link in a root-owned sticky folder, before any rule of dse's is asked. Read, never written: the
    // setting is the machine's, and other tests run beside these.
    private static bool KernelProtectsSymlinks() =>
        File.Exists("/proc/sys/fs/protected_symlinks") && File.ReadAllText("/proc/sys/fs/protected_symlinks").Trim() != "0";

    private static List<byte[]> Hashes(params string[] files) => files.Select(f => SHA256.HashData(File.ReadAllBytes(f))).ToList();

    [RootFact("owns a link by nobody in a sticky folder")]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public async Task Merge_pull_and_rebase_do_not_follow_another_users_link_in_a_sticky_folder()
    {
        using var dir = new TempDirectory("sticky-merge");
        string sticky = StickyFolder(dir);
        string golden = dir.File("g.vhdx"), parent = dir.File("p.vhdx"), child = dir.File("c.vhdx"), other = dir.File("o.vhdx");
        await CliRunner.OkAsync("create", golden, "--size", "4M");
        await CliRunner.OkAsync("create", parent, "--parent", golden);
        await CliRunner.OkAsync("create", child, "--parent", parent);
        await CliRunner.OkAsync("create", other, "--size", "4M");
        string link = Path.Combine(sticky, "c.vhdx");
        File.CreateSymbolicLink(link, child);
        Assert.Equal(0, ExternalTool.Run("chown", "-h", "nobody", link).ExitCode);
        var before = Hashes(golden, parent, child, other);

        foreach (var args in new[] { new[] { "merge", link, "--force" }, ["merge", link, "--pull", "--force"], ["rebase", link, "--parent", other] })
        {
            var r = await CliRunner.RunAsync(args);
            Assert.True(r.ExitCode == 15, $"{string.Join(' ', args)}: {r}");
            Assert.Contains(link, r.StdErr);
            Assert.Equal(before, Hashes(golden, parent, child, other));
            Assert.Empty(Directory.GetFiles(dir.Path, "*.dse-*", SearchOption.AllDirectories));
            Assert.True(new FileInfo(link).LinkTarget == child, "the link was replaced");
        }
    }

    /// <summary>
    /// A layer the merge removes reached through another user's link in a sticky folder (the chain's parent found beside
    /// the child there): refused before the copy (exit 15, nothing written), not after it in the remove phase.
    /// </summary>
    [RootFact("owns a link by nobody in a sticky folder")]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public async Task A_merge_refuses_a_layer_reached_through_another_users_link_before_copying()
    {
        using var dir = new TempDirectory("sticky-merge-layer");
        string sticky = StickyFolder(dir);
        string golden = dir.File("g.vhdx"), parent = dir.File("p.vhdx"), link = Path.Combine(sticky, "p.vhdx"), child = Path.Combine(sticky, "c.vhdx");
        await CliRunner.OkAsync("create", golden, "--size", "4M");
        await CliRunner.OkAsync("create", parent, "--parent", golden);
        File.CreateSymbolicLink(link, parent);
        await CliRunner.OkAsync("create", child, "--parent", link);
        File.WriteAllBytes(dir.File("in.bin"), RandomData.Bytes(65536, 3));
        await CliRunner.OkAsync("write", child, "--offset", "0", "--input", dir.File("in.bin"));
        Assert.Equal(0, ExternalTool.Run("chown", "-h", "nobody", link).ExitCode);
        var before = Hashes(golden, parent, child);

        var r = await CliRunner.RunAsync("merge", child, "--into", golden, "--force");
        if (KernelProtectsSymlinks())
        {
            // The chain does not open: the kernel refuses the parent's open through the link (EACCES).
            Assert.True(r.ExitCode == ExitCodes.FileNotFound, r.ToString());
            Assert.Contains($"{link}: the parent image path is not accessible (permission denied)", r.StdErr);
        }
        else
        {
            Assert.True(r.ExitCode == ExitCodes.ReadOnly, r.ToString());
            Assert.Contains(link, r.StdErr);
        }
        Assert.Equal(before, Hashes(golden, parent, child));
        Assert.Empty(Directory.GetFiles(dir.Path, "*.dse-*", SearchOption.AllDirectories));
    }

    /// <summary>
    /// Rebase writes no seal through another user's link in a sticky folder (the rule merge applies): a new parent named
    /// through one is left unsealed with the note an unwritable parent gets, and an old parent reached through one keeps
    /// the sole clone its seal records; the rebase itself succeeds. That is with fs.protected_symlinks 0; under 1 the
    /// kernel refuses the new parent's open through the link, and the rebase fails typed with nothing written.
    /// </summary>
    [RootFact("owns a link by nobody in a sticky folder")]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public async Task Rebase_writes_no_seal_through_another_users_link_in_a_sticky_folder()
    {
        using var dir = new TempDirectory("sticky-rebase");
        string sticky = StickyFolder(dir);
        string parent = dir.File("p.vhdx"), child = dir.File("c.vhdx"), fresh = dir.File("n.vhdx");
        string oldLink = Path.Combine(sticky, "p.vhdx"), newLink = Path.Combine(sticky, "n.vhdx");
        await CliRunner.OkAsync("create", parent, "--size", "4M");
        await CliRunner.OkAsync("create", fresh, "--size", "4M");
        // Private, so the seal records its first linked clone (made through root's own link: followed and written).
        File.SetUnixFileMode(parent, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        File.CreateSymbolicLink(oldLink, parent);
        await CliRunner.OkAsync("create", child, "--parent", oldLink);
        Assert.Equal(JsonValueKind.String, (await CliRunner.InfoAsync(parent)).GetProperty("soleChild").ValueKind);
        File.CreateSymbolicLink(newLink, fresh);
        foreach (var link in new[] { oldLink, newLink }) Assert.Equal(0, ExternalTool.Run("chown", "-h", "nobody", link).ExitCode);
        var before = Hashes(parent, fresh);
        var childBefore = SHA256.HashData(File.ReadAllBytes(child));

        var r = await CliRunner.RunAsync("rebase", child, "--parent", newLink);
        if (KernelProtectsSymlinks())
        {
            // The kernel refuses root's open of the new parent through nobody's link (EACCES): nothing is written.
            Assert.True(r.ExitCode == ExitCodes.FileNotFound, r.ToString());
            Assert.Contains($"{newLink}: the image path is not accessible (permission denied)", r.StdErr);
            Assert.Equal(before, Hashes(parent, fresh));
            Assert.Equal(childBefore, SHA256.HashData(File.ReadAllBytes(child)));
            Assert.False((await CliRunner.InfoAsync(fresh)).GetProperty("sealed").GetBoolean());
            Assert.Equal(JsonValueKind.String, (await CliRunner.InfoAsync(parent)).GetProperty("soleChild").ValueKind);
            Assert.Empty(Directory.GetFiles(dir.Path, "*.dse-*", SearchOption.AllDirectories));
        }
        else
        {
            Assert.True(r.ExitCode == 0, r.ToString());
            Assert.Contains($"{newLink} was not sealed (", r.StdErr);
            Assert.Contains("fs.protected_symlinks", r.StdErr);
            Assert.Equal(before, Hashes(parent, fresh));
            Assert.False((await CliRunner.InfoAsync(fresh)).GetProperty("sealed").GetBoolean());
            Assert.Equal(JsonValueKind.String, (await CliRunner.InfoAsync(parent)).GetProperty("soleChild").ValueKind);
            Assert.Equal(newLink, (await CliRunner.InfoAsync(child)).GetProperty("parent").GetProperty("image").GetString());
        }
    }

    /// <summary>
    /// A merge run by a user through the sticky folder owner's link (followed, as fs.protected_symlinks follows it) may
    /// not remove that link (the sticky bit keeps it from removing another user's entry): the merge finishes, the
    /// merged file goes and the link is left with a note saying why, and no journal is left to stop a rerun.
    /// </summary>
    [RootFact("runs dse as nobody through setpriv")]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public async Task A_merge_through_the_folder_owners_link_in_a_sticky_folder_leaves_the_link_with_a_note()
    {
        var (dir, sticky, big) = StickyAndBig("sticky-merge-keep");
        using var owned = dir;
        string parent = Path.Combine(sticky, "p.vhdx"), child = Path.Combine(big, "c.vhdx"), link = Path.Combine(sticky, "c.vhdx"), flat = dir.File("c.raw");
        await CliRunner.OkAsync("create", parent, "--size", "4M");
        await CliRunner.OkAsync("create", child, "--parent", parent);
        File.WriteAllBytes(dir.File("in.bin"), RandomData.Bytes(65536, 5));
        await CliRunner.OkAsync("write", child, "--offset", "0", "--input", dir.File("in.bin"));
        await CliRunner.OkAsync("export", child, flat);
        foreach (var f in new[] { parent, child, big }) ExternalTool.RunChecked("chown", "65534:65534", f);
        File.CreateSymbolicLink(link, child); // root's, the sticky folder's owner

        var (code, stdout, stderr) = CliRunner.RunAsNobody("merge", link, "--force");
        Assert.True(code == 0, stderr);
        Assert.Contains($"left the link {link} to a merged layer: it is another user's, in a sticky folder", stderr);
        Assert.DoesNotContain("removed link", stdout);
        Assert.True(new FileInfo(link).LinkTarget == child, "the link was changed");
        Assert.False(File.Exists(child), "the merged file was left");
        Assert.Empty(Directory.GetFiles(dir.Path, "*.dse-*", SearchOption.AllDirectories));
        Assert.Equal(0, (await CliRunner.RunAsync("compare", parent, flat)).ExitCode);
    }

    [RootFact("owns the link, as the running user")]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public async Task Own_link_in_a_sticky_folder_is_followed_and_the_target_is_named()
    {
        using var dir = new TempDirectory("sticky");
        string image = dir.File("d.vhdx"), sticky = StickyFolder(dir);
        Assert.Equal(0, (await CliRunner.RunAsync("create", image, "--size", "4M")).ExitCode);
        string target = dir.File("real.raw"), link = Path.Combine(sticky, "out.raw");
        File.CreateSymbolicLink(link, target);
        var r = await CliRunner.RunAsync("export", image, link);
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Equal(4 << 20, new FileInfo(target).Length);
        Assert.Contains(target, r.StdOut);
        Assert.True(new FileInfo(link).LinkTarget == target, "the link was replaced");
    }
    /// <summary>
    /// A snapshot delete whose merged layer is reached through the sticky folder owner's link (the user moved the layer's
    /// file elsewhere and root linked it back): the delete finishes, the merged file goes, and the link it may not remove
    /// is left with merge's note and in keptLinks (the delete used to drop what its merge said).
    /// </summary>
    [RootFact("runs dse as nobody through setpriv")]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public async Task A_snapshot_delete_through_the_folder_owners_link_in_a_sticky_folder_leaves_the_link_with_a_note()
    {
        var (dir, sticky, big) = StickyAndBig("sticky-snapshot-keep");
        using var owned = dir;
        string disk = Path.Combine(sticky, "disk.qcow2"), flat = dir.File("disk.raw");
        await CliRunner.OkAsync("create", disk, "--size", "4M");
        File.WriteAllBytes(dir.File("a.bin"), RandomData.Bytes(65536, 7));
        File.WriteAllBytes(dir.File("b.bin"), RandomData.Bytes(65536, 8));
        await CliRunner.OkAsync("write", disk, "--offset", "0", "--input", dir.File("a.bin"));
        await CliRunner.OkAsync("snapshot", "create", disk, "--name", "a");
        await CliRunner.OkAsync("write", disk, "--offset", "32768", "--input", dir.File("b.bin"));
        await CliRunner.OkAsync("snapshot", "create", disk, "--name", "b");
        await CliRunner.OkAsync("export", disk, flat);
        // Snapshot b's layer (a's only child) is what deleting the base snapshot a merges away.
        var list = JsonDocument.Parse((await CliRunner.OkAsync("snapshot", "list", disk, "--json")).StdOut).RootElement;
        string link = list.GetProperty("snapshots").EnumerateArray().Single(e => e.GetProperty("name").GetString() == "b").GetProperty("file").GetString()!;
        string moved = Path.Combine(big, Path.GetFileName(link));
        File.Move(link, moved);
        foreach (var f in Directory.GetFiles(sticky).Append(moved).Append(big)) ExternalTool.RunChecked("chown", "65534:65534", f);
        File.CreateSymbolicLink(link, moved); // root's, the sticky folder's owner

        var (code, stdout, stderr) = CliRunner.RunAsNobody("snapshot", "delete", disk, "--name", "a", "--json");
        Assert.True(code == 0, stderr);
        Assert.Contains($"left the link {link} to a merged layer: it is another user's, in a sticky folder", stderr);
        var doc = JsonDocument.Parse(stdout).RootElement;
        Assert.Empty(doc.GetProperty("removedLinks").EnumerateArray());
        var kept = Assert.Single(doc.GetProperty("keptLinks").EnumerateArray());
        Assert.Equal(link, kept.GetProperty("link").GetString());
        Assert.True(new FileInfo(link).LinkTarget == moved, "the link was changed");
        Assert.False(File.Exists(moved), "the merged file was left");
        Assert.Empty(Directory.GetFiles(dir.Path, "*.dse-*", SearchOption.AllDirectories));
        Assert.Equal(0, (await CliRunner.RunAsync("compare", disk, flat)).ExitCode);
    }
}
