using System.Diagnostics;
using System.Text.Json;
using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Operations;

/// <summary>
/// Merge, pull and rebase of a qcow2 child named through a symbolic link (vms/t.qcow2 -> ../big/t.qcow2) whose parent
/// is a relative name (p.qcow2, itself a child of g.qcow2): dse opens the chain QEMU opens through the link, with the
/// parent beside the link, whatever lies beside the link's target; the link's target is the file that changes and the
/// link stays a link. qemu-img names the parents and checks the content.
/// </summary>
public class LinkedChainTests
{
    // Where the parents are: "link" (beside the link only), "target" (beside the link's target only) or "both" (beside
    // both, the copy beside the target with other content: pattern 5 where the one beside the link has 7).
    private sealed record Layout(TempDirectory Dir, string Vms, string Big, string Link, string Real, string Flat) : IDisposable
    {
        // The parent beside the target where there is one: no verb through the link may change it.
        private readonly string? _other = File.Exists(Path.Combine(Big, "p.qcow2")) ? ContentHash.OfFile(Path.Combine(Big, "p.qcow2")) : null;

        public string Beside(string name) => Path.Combine(Vms, name);
        public void OtherUntouched() { if (_other is not null) Assert.Equal(_other, ContentHash.OfFile(Path.Combine(Big, "p.qcow2"))); }
        public void Dispose() => Dir.Dispose();
    }

    // A large layout gives the copy 32 MiB to move (the child's 16M-48M, or the parent's 48M-80M for a pull), so a
    // slowed run is still copying when it is killed.
    private static Layout Make(string name, string place, bool large)
    {
        string size = large ? "96M" : "8M";
        var dir = new TempDirectory(name);
        string vms = Directory.CreateDirectory(dir.File("vms")).FullName, big = Directory.CreateDirectory(dir.File("big")).FullName;
        var parents = place switch { "link" => [(vms, 7)], "target" => [(big, 7)], _ => new[] { (vms, 7), (big, 5) } };
        foreach (var (folder, pattern) in parents)
        {
            string g = Path.Combine(folder, "g.qcow2"), p = Path.Combine(folder, "p.qcow2");
            ExternalTool.RunChecked("qemu-img", "create", "-q", "-f", "qcow2", g, size);
            ExternalTool.RunChecked("qemu-io", "-c", "write -P 3 4M 1M", g);
            ExternalTool.RunChecked("qemu-img", "create", "-q", "-f", "qcow2", "-b", "g.qcow2", "-F", "qcow2", p);
            ExternalTool.RunChecked("qemu-io", "-c", $"write -P {pattern} 0 1M", p);
            if (large) ExternalTool.RunChecked("qemu-io", "-c", $"write -P {pattern} 48M 32M", p);
        }
        // The child is made beside the first parent (qemu-img opens its backing file), then moved beside the target.
        string made = Path.Combine(parents[0].Item1, "t.qcow2"), real = Path.Combine(big, "t.qcow2"), link = Path.Combine(vms, "t.qcow2");
        ExternalTool.RunChecked("qemu-img", "create", "-q", "-f", "qcow2", "-b", "p.qcow2", "-F", "qcow2", made);
        ExternalTool.RunChecked("qemu-io", "-c", large ? "write -P 9 16M 32M" : "write -P 9 2M 1M", made);
        if (made != real) File.Move(made, real);
        File.CreateSymbolicLink(link, "../big/t.qcow2");
        // What QEMU reads through the link (the real file where QEMU cannot open the link's chain).
        string flat = dir.File("t.raw");
        ExternalTool.RunChecked("qemu-img", "convert", "-U", "-O", "raw", place == "target" ? real : link, flat);
        return new Layout(dir, vms, big, link, real, flat);
    }

    // The chain qemu-img opens at path, top first, each file as QEMU names it (a relative backing name combined with the
    // name of the image it was read from, "vms/../new.qcow2" written without its "..").
    private static string[] QemuChain(string path) =>
        JsonDocument.Parse(ExternalTool.RunChecked("qemu-img", "info", "-U", "--backing-chain", "--output=json", path)).RootElement
            .EnumerateArray().Select(e => Path.GetFullPath(e.GetProperty("filename").GetString()!)).ToArray();

    private static async Task<string?> DseParent(string path) =>
        (await CliRunner.InfoAsync(path)).GetProperty("parent").GetProperty("image").GetString();

    // Every file under the folder (links followed) with its content hash, and every link with what it names.
    private static string Snapshot(string folder) => string.Join("\n", Directory.GetFiles(folder, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal)
        .Select(f => new FileInfo(f).LinkTarget is { } to ? $"{f} -> {to}" : $"{f} {ContentHash.OfFile(f)}"));

    private static void SameContent(string image, string flat)
    {
        ExternalTool.RunChecked("qemu-img", "check", "-U", image);
        ExternalTool.RunChecked("qemu-img", "compare", "-U", "-F", "raw", image, flat);
    }

    // The state a verb through the link starts from: QEMU and dse name the same parent, the one beside the link.
    private static async Task<(Layout Layout, string[] Chain)> Start(string name, string place, bool large = false)
    {
        var l = Make(name, place, large);
        var chain = QemuChain(l.Link);
        Assert.Equal([l.Link, l.Beside("p.qcow2"), l.Beside("g.qcow2")], chain);
        Assert.Equal(chain[1], await DseParent(l.Link));
        return (l, chain);
    }

    // Runs dse slowed and kills it (SIGKILL) once its journal exists: an interruption while copying.
    private static async Task KillOnceJournaled(string journal, params string[] args)
    {
        using var p = CliRunner.StartSlowed(200, args);
        p.StandardInput.Close();
        var stderr = p.StandardError.ReadToEndAsync();
        var sw = Stopwatch.StartNew();
        while (!File.Exists(journal) && !p.HasExited && sw.Elapsed < TimeSpan.FromSeconds(60)) await Task.Delay(5);
        if (p.HasExited) Assert.Fail($"{args[0]} ended before it was killed: exit {p.ExitCode}: {await stderr}");
        p.Kill();
        await p.WaitForExitAsync();
    }

    private static void LinkKept(Layout l, string what)
    {
        Assert.True(new FileInfo(l.Link).LinkTarget == "../big/t.qcow2", $"{what}: the link was replaced");
        Assert.Empty(Directory.GetFiles(l.Dir.Path, "*.dse-*", SearchOption.AllDirectories));
    }

    [RequiresToolTheory("qemu-img", "qemu-io")]
    [InlineData("link")]
    [InlineData("both")]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public async Task A_merge_through_a_link_merges_into_the_parent_QEMU_finds_beside_the_link(string place)
    {
        var (l, chain) = await Start("link-merge", place);
        using var owned = l;
        var r = await CliRunner.RunAsync("merge", l.Link);
        Assert.True(r.ExitCode == 0, $"{place}: {r}");
        Assert.False(File.Exists(l.Real), "the real child was left");
        // The link named the merged child only: it goes with it, and is said to.
        Assert.False(IsLink(l.Link) || Path.Exists(l.Link), "the link to the merged child was left dangling");
        Assert.Contains($"removed link {l.Link}", r.StdOut);
        Assert.Equal([chain[1], chain[2]], QemuChain(chain[1]));
        // The parent beside the link now holds what the link showed; the one beside the target is untouched.
        SameContent(chain[1], l.Flat);
        l.OtherUntouched();
        Assert.Empty(Directory.GetFiles(l.Dir.Path, "*.dse-*", SearchOption.AllDirectories));
    }

    [RequiresToolTheory("qemu-img", "qemu-io")]
    [InlineData("link")]
    [InlineData("both")]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public async Task A_pull_through_a_link_pulls_the_parent_QEMU_finds_beside_the_link(string place)
    {
        using var l = (await Start("link-pull", place)).Layout;
        var r = await CliRunner.RunAsync("merge", l.Link, "--pull");
        Assert.True(r.ExitCode == 0, $"{place}: {r}");
        LinkKept(l, "pull");
        // The real child now reads through the grandparent beside the link, as it showed before.
        Assert.Equal([l.Link, l.Beside("g.qcow2")], QemuChain(l.Link));
        Assert.Equal(l.Beside("g.qcow2"), await DseParent(l.Link));
        SameContent(l.Link, l.Flat);
        l.OtherUntouched();
    }

    [RequiresToolTheory("qemu-img", "qemu-io")]
    [InlineData("link")]
    [InlineData("both")]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public async Task A_rebase_through_a_link_keeps_what_QEMU_read_through_the_link(string place)
    {
        using var l = (await Start("link-rebase", place)).Layout;
        string fresh = l.Dir.File("new.qcow2");
        ExternalTool.RunChecked("qemu-img", "create", "-q", "-f", "qcow2", fresh, "8M");
        ExternalTool.RunChecked("qemu-io", "-c", "write -P 1 6M 1M", fresh);

        var r = await CliRunner.RunAsync("rebase", l.Link, "--parent", fresh);
        Assert.True(r.ExitCode == 0, $"{place}: {r}");
        LinkKept(l, "rebase");
        Assert.Equal([l.Link, fresh], QemuChain(l.Link));
        SameContent(l.Link, l.Flat);
        l.OtherUntouched();
    }

    [RequiresToolFact("qemu-img", "qemu-io")]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public async Task Merge_pull_and_rebase_through_a_link_refuse_a_parent_found_beside_the_target_only()
    {
        using var l = Make("link-target-only", "target", large: false);
        string fresh = l.Dir.File("new.qcow2");
        ExternalTool.RunChecked("qemu-img", "create", "-q", "-f", "qcow2", fresh, "8M");
        // QEMU cannot open the chain through the link either: it looks for vms/p.qcow2.
        var info = ExternalTool.Run("qemu-img", "info", "-U", "--backing-chain", l.Link);
        Assert.True(info.ExitCode != 0 && info.StdErr.Contains(l.Beside("p.qcow2")), info.ToString());
        string before = Snapshot(l.Dir.Path);

        foreach (var (args, exit) in new[] { (new[] { "merge", l.Link }, 9), (["merge", l.Link, "--pull"], 9), (["rebase", l.Link, "--parent", fresh], 10) })
        {
            var r = await CliRunner.RunAsync(args);
            Assert.True(r.ExitCode == exit, $"{args[0]} {args[^1]}: {r}");
            Assert.Contains(l.Beside("p.qcow2"), r.StdErr);
            Assert.Equal(before, Snapshot(l.Dir.Path));
        }
    }

    /// <summary>
    /// A merge or pull through a link killed (SIGKILL) while copying, then run again naming the link's target: the journal
    /// is beside the file written or merged away (the target), so either name finds it, and it records the name the chain
    /// was opened through, so the rerun uses the same parent (beside the link), not the one beside the target.
    /// </summary>
    [RequiresToolTheory("qemu-img", "qemu-io")]
    [InlineData("merge")]
    [InlineData("pull")]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public async Task A_merge_or_pull_through_a_link_killed_midway_finishes_when_rerun_under_the_real_name(string verb)
    {
        var (l, chain) = await Start($"link-{verb}-kill", "both", large: true);
        using var owned = l;
        string journal = l.Real + ".dse-journal.json";
        string[] Args(string image) => verb == "pull" ? ["merge", image, "--pull"] : ["merge", image];

        await KillOnceJournaled(journal, Args(l.Link));

        Assert.True(File.Exists(journal), "no journal beside the link's target");
        Assert.False(File.Exists(l.Link + ".dse-journal.json"), "a journal beside the link");
        // Interrupted: the link reads exactly as before.
        SameContent(l.Link, l.Flat);

        var rerun = await CliRunner.RunProcessAsync(null, Args(l.Real));
        Assert.True(rerun.ExitCode == 0, rerun.ToString());
        Assert.Contains("an interrupted run was found and finished", rerun.StdErr);
        if (verb == "merge")
        {
            Assert.Contains($"merged into {chain[1]}", rerun.StdOut);
            Assert.False(File.Exists(l.Real));
            SameContent(chain[1], l.Flat);
        }
        else
        {
            LinkKept(l, "pull");
            Assert.Equal([l.Link, l.Beside("g.qcow2")], QemuChain(l.Link));
            SameContent(l.Link, l.Flat);
        }
        l.OtherUntouched();
        Assert.Empty(Directory.GetFiles(l.Dir.Path, "*.dse-*", SearchOption.AllDirectories));
    }

    /// <summary>
    /// A pull through a link killed while copying, the link then re-pointed at another file: the rerun (under the real
    /// name, which finds the journal) would lock the real file but open the chain at the journal's name, now another
    /// file. It is refused, naming the journal and both files, and nothing changes.
    /// </summary>
    [RequiresToolFact("qemu-img", "qemu-io")]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public async Task A_pull_resumed_after_its_link_was_repointed_is_refused()
    {
        var (l, _) = await Start("link-pull-repoint", "link", large: true);
        using var owned = l;
        string journal = l.Real + ".dse-journal.json";
        await KillOnceJournaled(journal, "merge", l.Link, "--pull");
        Assert.True(File.Exists(journal), "no journal beside the link's target");

        // The link now names another child of the same parent.
        string other = Path.Combine(l.Big, "o.qcow2");
        File.Copy(l.Real, other);
        File.Delete(l.Link);
        File.CreateSymbolicLink(l.Link, "../big/o.qcow2");
        string before = Snapshot(l.Dir.Path);

        var rerun = await CliRunner.RunAsync("merge", l.Real, "--pull");
        Assert.True(rerun.ExitCode == 11, rerun.ToString());
        Assert.Contains(journal, rerun.StdErr);
        Assert.Contains(l.Link, rerun.StdErr);
        Assert.Contains(l.Real, rerun.StdErr);
        Assert.Equal(before, Snapshot(l.Dir.Path));
    }

    /// <summary>
    /// The parent a merge writes is reached through a link (vms/base.qcow2 -> ../gold/base.qcow2): a child of the real
    /// file beside it (gold/other.qcow2) depends on it and stops the merge, although the link's folder shows none;
    /// without it the merge writes the real file in place and the parent's link stays a link.
    /// </summary>
    [RequiresToolFact("qemu-img", "qemu-io")]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public async Task A_merge_into_a_parent_named_through_a_link_sees_the_children_beside_the_real_file()
    {
        using var dir = new TempDirectory("link-merge-target");
        string vms = Directory.CreateDirectory(dir.File("vms")).FullName, gold = Directory.CreateDirectory(dir.File("gold")).FullName;
        string real = Path.Combine(gold, "base.qcow2"), link = Path.Combine(vms, "base.qcow2"), image = Path.Combine(vms, "d.qcow2"), other = Path.Combine(gold, "other.qcow2");
        ExternalTool.RunChecked("qemu-img", "create", "-q", "-f", "qcow2", real, "8M");
        ExternalTool.RunChecked("qemu-io", "-c", "write -P 7 0 1M", real);
        File.CreateSymbolicLink(link, "../gold/base.qcow2");
        ExternalTool.RunChecked("qemu-img", "create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", image);
        ExternalTool.RunChecked("qemu-io", "-c", "write -P 9 0 512K", image);
        ExternalTool.RunChecked("qemu-img", "create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", other);
        string flat = dir.File("d.raw"), otherFlat = dir.File("other.raw");
        ExternalTool.RunChecked("qemu-img", "convert", "-O", "raw", image, flat);
        ExternalTool.RunChecked("qemu-img", "convert", "-O", "raw", other, otherFlat);
        string before = Snapshot(dir.Path);

        var r = await CliRunner.RunAsync("merge", image);
        Assert.True(r.ExitCode == 15, r.ToString());
        Assert.Contains($"{other} (child of {link})", r.StdErr);
        Assert.Equal(before, Snapshot(dir.Path));
        SameContent(other, otherFlat);

        File.Delete(other);
        r = await CliRunner.RunAsync("merge", image);
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.True(new FileInfo(link).LinkTarget == "../gold/base.qcow2", "the parent's link was replaced");
        Assert.False(File.Exists(image));
        SameContent(real, flat);
    }

    // A chain of three qcow2 files each named through a link in vms (t -> ../big/t, m -> ../mid/m) over a real parent
    // beside the links (vms/p, the relative name m gives): merging t into p removes both files and makes both links
    // meaningless.
    private sealed record Three(TempDirectory Dir, string Vms, string Top, string Mid, string TopFile, string MidFile, string Parent, string Flat);

    private static Three MakeThree(string name)
    {
        var dir = new TempDirectory(name);
        string vms = Directory.CreateDirectory(dir.File("vms")).FullName;
        Directory.CreateDirectory(dir.File("big"));
        Directory.CreateDirectory(dir.File("mid"));
        string p = Path.Combine(vms, "p.qcow2"), m = Path.Combine(vms, "m.qcow2"), t = Path.Combine(vms, "t.qcow2");
        ExternalTool.RunChecked("qemu-img", "create", "-q", "-f", "qcow2", p, "8M");
        ExternalTool.RunChecked("qemu-io", "-c", "write -P 3 0 2M", p);
        ExternalTool.RunChecked("qemu-img", "create", "-q", "-f", "qcow2", "-b", "p.qcow2", "-F", "qcow2", m);
        ExternalTool.RunChecked("qemu-io", "-c", "write -P 5 1M 2M", m);
        ExternalTool.RunChecked("qemu-img", "create", "-q", "-f", "qcow2", "-b", "m.qcow2", "-F", "qcow2", t);
        ExternalTool.RunChecked("qemu-io", "-c", "write -P 9 2M 2M", t);
        string flat = dir.File("t.raw");
        ExternalTool.RunChecked("qemu-img", "convert", "-O", "raw", t, flat);
        string mFile = dir.File("mid/m.qcow2"), tFile = dir.File("big/t.qcow2");
        File.Move(m, mFile);
        File.Move(t, tFile);
        File.CreateSymbolicLink(m, "../mid/m.qcow2");
        File.CreateSymbolicLink(t, "../big/t.qcow2");
        Assert.Equal([t, m, p], QemuChain(t));
        return new Three(dir, vms, t, m, tFile, mFile, p, flat);
    }

    private static bool IsLink(string path) => new FileInfo(path).LinkTarget is not null;

    /// <summary>
    /// A merge through links stopped in its remove phase after the top's file went (here the middle layer's folder is
    /// immutable, so its delete fails: the state a kill -9 between the two deletes leaves, journal in phase "remove"),
    /// then, before the rerun, the middle layer's link is re-pointed by the user at another file. The rerun under the
    /// link's name (dangling now: the journal is beside its recorded target) finishes: the merged file is removed, the
    /// top's link with it, and the re-pointed link and the file it now names are left, with a note.
    /// </summary>
    [RootFact("makes a folder immutable (chattr +i)")]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public async Task A_merge_through_links_stopped_in_its_remove_phase_finishes_on_rerun_and_spares_a_repointed_link()
    {
        var t = MakeThree("link-merge-remove");
        using var owned = t.Dir;
        string journal = t.TopFile + ".dse-journal.json", midFolder = Path.GetDirectoryName(t.MidFile)!;
        ExternalTool.RunChecked("chattr", "+i", midFolder);
        try
        {
            var stopped = await CliRunner.RunAsync("merge", t.Top, "--into", t.Parent);
            Assert.True(stopped.ExitCode != 0, stopped.ToString());
            Assert.Contains(t.MidFile, stopped.StdErr);
        }
        finally { ExternalTool.RunChecked("chattr", "-i", midFolder); }
        Assert.Contains("\"Phase\": \"remove\"", File.ReadAllText(journal));
        Assert.False(File.Exists(t.TopFile), "the top's file was not removed before the stop");
        Assert.True(IsLink(t.Top) && IsLink(t.Mid), "a link was removed before the stop");
        SameContent(t.Parent, t.Flat);

        // The user points the middle layer's name at another file meanwhile.
        string other = t.Dir.File("mid/other.qcow2");
        File.Copy(t.MidFile, other);
        string otherHash = ContentHash.OfFile(other);
        File.Delete(t.Mid);
        File.CreateSymbolicLink(t.Mid, "../mid/other.qcow2");

        var rerun = await CliRunner.RunAsync("merge", t.Top, "--into", t.Parent, "--json");
        Assert.True(rerun.ExitCode == 0, rerun.ToString());
        var doc = JsonDocument.Parse(rerun.StdOut).RootElement;
        Assert.True(doc.GetProperty("resumed").GetBoolean());
        Assert.Equal([t.Top], doc.GetProperty("removedLinks").EnumerateArray().Select(e => e.GetString()));
        var kept = Assert.Single(doc.GetProperty("keptLinks").EnumerateArray());
        Assert.Equal(t.Mid, kept.GetProperty("link").GetString());
        Assert.Contains($"it now leads to {other}, not to the merged {t.MidFile}", kept.GetProperty("reason").GetString());
        Assert.Contains($"left the link {t.Mid}", rerun.StdErr);

        Assert.False(Path.Exists(t.MidFile) || Path.Exists(journal), "the merged file or the journal was left");
        Assert.False(IsLink(t.Top) || Path.Exists(t.Top), "the top's link was left");
        Assert.True(new FileInfo(t.Mid).LinkTarget == "../mid/other.qcow2", "the re-pointed link was changed");
        Assert.Equal(otherHash, ContentHash.OfFile(other));
        Assert.Equal([t.Parent], QemuChain(t.Parent));
        SameContent(t.Parent, t.Flat);
    }

    /// <summary>
    /// A merged layer's link in a folder this user may not change (immutable here; another user's folder or a sticky
    /// one for a user who owns neither the link nor the folder): the merge is not refused for a name, it finishes, and
    /// the link is left with a note saying why; nothing is left half done (no journal).
    /// </summary>
    [RootFact("makes a folder immutable (chattr +i)")]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public async Task A_merged_layers_link_this_user_may_not_remove_is_left_with_a_note()
    {
        var t = MakeThree("link-merge-keep");
        using var owned = t.Dir;
        // The links' folder (it also holds the parent, written in place, not through the folder).
        ExternalTool.RunChecked("chattr", "+i", t.Vms);
        CliResult r;
        try { r = await CliRunner.RunAsync("merge", t.Top, "--into", t.Parent); }
        finally { ExternalTool.RunChecked("chattr", "-i", t.Vms); }
        Assert.True(r.ExitCode == 0, r.ToString());
        foreach (var link in new[] { t.Top, t.Mid })
        {
            Assert.Contains($"left the link {link} to a merged layer: its folder is not writable (an immutable attribute", r.StdErr);
            Assert.True(IsLink(link), $"{link} was removed");
        }
        Assert.DoesNotContain("removed link", r.StdOut);
        Assert.False(Path.Exists(t.TopFile) || Path.Exists(t.MidFile), "a merged file was left");
        Assert.Empty(Directory.GetFiles(t.Dir.Path, "*.dse-*", SearchOption.AllDirectories));
        SameContent(t.Parent, t.Flat);
    }

    /// <summary>
    /// A snapshot delete that merges the current state into the snapshot's layer and renames the layer over the disk
    /// (the disk's path never goes missing), the layer's file moved elsewhere and linked back by the user: the real file
    /// is what is renamed, and the layer's link, which would lead nowhere, goes as a merged layer's does.
    /// </summary>
    [RequiresToolFact("qemu-img", "qemu-io")]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public async Task A_snapshot_delete_renaming_a_linked_layer_over_the_disk_removes_the_layers_link()
    {
        using var dir = new TempDirectory("link-snapshot-replace");
        string disk = dir.File("disk.qcow2"), other = Directory.CreateDirectory(dir.File("other")).FullName;
        await CliRunner.OkAsync("create", disk, "--size", "8M");
        ExternalTool.RunChecked("qemu-io", "-c", "write -P 3 0 1M", disk);
        await CliRunner.OkAsync("snapshot", "create", disk, "--name", "a");
        ExternalTool.RunChecked("qemu-io", "-c", "write -P 9 512K 1M", disk);
        string flat = dir.File("disk.raw");
        ExternalTool.RunChecked("qemu-img", "convert", "-O", "raw", disk, flat);
        string layer = Assert.Single(Directory.GetFiles(dir.Path, "disk.snap-*.qcow2")), moved = Path.Combine(other, Path.GetFileName(layer));
        File.Move(layer, moved);
        File.CreateSymbolicLink(layer, moved);
        Assert.Equal([disk, layer], QemuChain(disk));

        var r = await CliRunner.RunAsync("snapshot", "delete", disk, "--name", "a", "--json");
        Assert.True(r.ExitCode == 0, r.ToString());
        // The link's removal is reported as merge reports it (the delete used to drop what its merge said).
        Assert.Equal([layer], JsonDocument.Parse(r.StdOut).RootElement.GetProperty("removedLinks").EnumerateArray().Select(e => e.GetString()));
        Assert.False(IsLink(layer) || Path.Exists(layer), "the layer's link was left");
        Assert.False(Path.Exists(moved), "the layer's file was left");
        Assert.Equal([disk], QemuChain(disk));
        SameContent(disk, flat);
        Assert.Empty(Directory.GetFiles(dir.Path, "*.dse-*", SearchOption.AllDirectories));
    }
}
