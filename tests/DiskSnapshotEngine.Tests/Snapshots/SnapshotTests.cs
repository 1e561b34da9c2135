using System.Diagnostics;
using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.Snapshots;
using DiskSnapshotEngine.Tests.Infrastructure;
using DiskSnapshotEngine.Tests.Operations;

namespace DiskSnapshotEngine.Tests.Snapshots;

public class SnapshotTests
{
    private const long Size = 6L << 20;

    private static void AssertSnapshots(string disk, Dictionary<string, byte[]> expected, byte[] current, string when)
    {
        OpsKit.AssertContent(current, disk, $"{when}: the current state");
        var list = DiskSnapshots.List(disk);
        Assert.Equal(expected.Keys.Order(), list.Select(s => s.Entry.Name).Order());
        foreach (var s in list) OpsKit.AssertContent(expected[s.Entry.Name], s.Path, $"{when}: snapshot '{s.Entry.Name}'");
    }

    [Theory]
    [InlineData(".vdi")]
    [InlineData(".vhdx")]
    public async Task Create_revert_branch_rollback_and_delete_keep_every_state(string ext)
    {
        using var dir = new TempDirectory("snap");
        string disk = dir.File("vm" + ext);
        var rng = new Random(31);
        var cur = new byte[Size];
        var snaps = new Dictionary<string, byte[]>();
        OpsKit.CreateBase(disk, Size);
        OpsKit.RandomWrites(disk, rng, 5, cur);

        DiskSnapshots.Create(disk, "a", "first");
        snaps["a"] = (byte[])cur.Clone();
        OpsKit.RandomWrites(disk, rng, 5, cur);
        DiskSnapshots.Create(disk, "b");
        snaps["b"] = (byte[])cur.Clone();
        OpsKit.RandomWrites(disk, rng, 5, cur);
        AssertSnapshots(disk, snaps, cur, "after two snapshots");
        Assert.Equal("b", DiskSnapshots.List(disk).Single(s => s.IsCurrent).Entry.Name);
        Assert.Equal(1, DiskSnapshots.List(disk).Single(s => s.Entry.Name == "b").Depth);

        // Revert to a: the tree branches; b is kept.
        DiskSnapshots.Revert(disk, "a");
        cur = (byte[])snaps["a"].Clone();
        AssertSnapshots(disk, snaps, cur, "after revert to a");
        OpsKit.RandomWrites(disk, rng, 5, cur);
        DiskSnapshots.Create(disk, "c");
        snaps["c"] = (byte[])cur.Clone();
        OpsKit.RandomWrites(disk, rng, 3, cur);

        // Rollback goes to the newest snapshot the current state descends from: c.
        Assert.Equal("c", DiskSnapshots.Rollback(disk).Name);
        cur = (byte[])snaps["c"].Clone();
        AssertSnapshots(disk, snaps, cur, "after rollback");
        OpsKit.RandomWrites(disk, rng, 3, cur);

        // a is the base with two branches (b and c): refused with the branches named.
        var ex = await Assert.ThrowsAsync<DiskImageException>(() => DiskSnapshots.DeleteAsync(disk, "a"));
        Assert.Equal(ErrorKind.ReadOnly, ex.Kind);
        Assert.Contains("2 branches", ex.Message);

        // c has a parent and one child (the current state): pulled into it.
        await DiskSnapshots.DeleteAsync(disk, "c");
        snaps.Remove("c");
        AssertSnapshots(disk, snaps, cur, "after deleting c");
        // b: a leaf snapshot, removed.
        await DiskSnapshots.DeleteAsync(disk, "b");
        snaps.Remove("b");
        AssertSnapshots(disk, snaps, cur, "after deleting b");
        // a: the base with one child (the current state): committed, and the disk's path keeps naming the disk.
        await DiskSnapshots.DeleteAsync(disk, "a");
        snaps.Remove("a");
        AssertSnapshots(disk, snaps, cur, "after deleting a");
        Assert.Single(Directory.EnumerateFiles(dir.Path, "*" + ext));
        using var chain = DiskImage.Open(disk);
        Assert.Single(chain.Layers);
    }

    [Fact]
    public void Create_and_revert_take_constant_time_on_a_huge_disk()
    {
        using var dir = new TempDirectory("snap-huge");
        string disk = dir.File("big.vhdx");
        using (var l = DiskImage.Create(disk, new ImageCreateOptions(2L << 40))) { }
        using (var chain = DiskImage.Open(disk, OpenOptions.ReadWrite)) { chain.Write(1L << 40, new byte[] { 7 }); chain.Flush(); }
        var before = DiskSnapshotEngine.IO.FileNode.Of(disk);
        long length = new FileInfo(disk).Length;
        var sw = Stopwatch.StartNew();
        var entry = DiskSnapshots.Create(disk, "s");
        DiskSnapshots.Revert(disk, "s");
        sw.Stop();
        // Nothing was copied: the snapshot layer is the disk's old file (the same inode, sealed in place).
        Assert.True(DiskSnapshotEngine.IO.FileNode.Of(DiskSnapshots.PathOf(disk, entry)).SameFileAs(before));
        Assert.Equal(length, new FileInfo(DiskSnapshots.PathOf(disk, entry)).Length);
        Assert.True(new FileInfo(disk).Length < 64L << 20);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(10), $"took {sw.Elapsed}");
        var b = new byte[1];
        using var opened = DiskImage.Open(disk);
        opened.Read(1L << 40, b);
        Assert.Equal(7, b[0]);
    }

    [Fact]
    public async Task Plain_merge_of_a_snapshot_layer_is_refused_in_favour_of_snapshot_delete()
    {
        using var dir = new TempDirectory("snap-merge");
        string disk = dir.File("vm.vdi");
        var cur = new byte[Size];
        OpsKit.CreateBase(disk, Size);
        OpsKit.RandomWrites(disk, new Random(35), 3, cur);
        DiskSnapshots.Create(disk, "s");
        var ex = await Assert.ThrowsAsync<DiskImageException>(() => DiskSnapshotEngine.Operations.Merge.CommitAsync(disk, options: new DiskSnapshotEngine.Operations.MergeOptions { Guard = SnapshotMergeGuard.Instance }));
        Assert.Equal(ErrorKind.ReadOnly, ex.Kind);
        Assert.Contains("snapshot 's'", ex.Message);
        OpsKit.AssertContent(cur, disk, "after the refused merge");
    }

    [Fact]
    public void A_vhdx_linked_clone_in_use_blocks_create_untouched_and_a_vdi_one_follows_the_snapshot()
    {
        using var dir = new TempDirectory("snap-clones");
        string vhdx = dir.File("vm.vhdx");
        OpsKit.CreateBase(vhdx, Size);
        OpsKit.CreateChild(dir.File("clone.vhdx"), vhdx);
        var before = Directory.GetFiles(dir.Path).ToDictionary(f => f, File.ReadAllBytes);
        // The clone would need relinking, but someone is writing it: refuse before anything changes.
        using (DiskImage.OpenLayer(dir.File("clone.vhdx"), writable: true))
        {
            var ex = Assert.Throws<DiskImageException>(() => DiskSnapshots.Create(vhdx, "s"));
            Assert.Equal(ErrorKind.Locked, ex.Kind);
            Assert.Contains("clone.vhdx", ex.Message);
        }
        foreach (var (file, bytes) in before) Assert.Equal(bytes, File.ReadAllBytes(file));
        Assert.Equal(before.Keys.Order(), Directory.GetFiles(dir.Path).Order());

        string vdi = dir.File("vm.vdi");
        var cur = new byte[Size];
        OpsKit.CreateBase(vdi, Size);
        OpsKit.RandomWrites(vdi, new Random(36), 3, cur);
        OpsKit.CreateChild(dir.File("clone.vdi"), vdi);
        DiskSnapshots.Create(vdi, "s");
        OpsKit.AssertContent(cur, dir.File("clone.vdi"), "the VDI linked clone after the snapshot");
    }

    [Fact]
    public void Names_are_unique_and_unknown_names_are_listed()
    {
        using var dir = new TempDirectory("snap-names");
        string disk = dir.File("vm.vdi");
        OpsKit.CreateBase(disk, Size);
        DiskSnapshots.Create(disk, "one");
        Assert.Equal(ErrorKind.AlreadyExists, Assert.Throws<DiskImageException>(() => DiskSnapshots.Create(disk, "one")).Kind);
        var ex = Assert.Throws<DiskImageException>(() => DiskSnapshots.Revert(disk, "two"));
        Assert.Equal(ErrorKind.InvalidArgument, ex.Kind);
        Assert.Contains("one", ex.Message);
    }

    [Fact]
    public void Raw_disks_are_refused_with_a_clear_message()
    {
        using var dir = new TempDirectory("snap-raw");
        string disk = dir.File("vm.img");
        OpsKit.CreateBase(disk, Size);
        var ex = Assert.Throws<DiskImageException>(() => DiskSnapshots.Create(disk, "x"));
        Assert.Equal(ErrorKind.Unsupported, ex.Kind);
        Assert.False(File.Exists(SnapshotCatalog.PathFor(disk)) && DiskSnapshots.List(disk).Count > 0);
    }

    [Fact]
    public void Repair_rebuilds_a_lost_catalog_from_the_images()
    {
        using var dir = new TempDirectory("snap-repair");
        string disk = dir.File("vm.vdi");
        var rng = new Random(33);
        var cur = new byte[Size];
        OpsKit.CreateBase(disk, Size);
        OpsKit.RandomWrites(disk, rng, 3, cur);
        var a = DiskSnapshots.Create(disk, "a");
        OpsKit.RandomWrites(disk, rng, 3, cur);
        var b = DiskSnapshots.Create(disk, "b");
        File.WriteAllText(SnapshotCatalog.PathFor(disk), "{ not json");
        Assert.Equal(ErrorKind.CorruptImage, Assert.Throws<DiskImageException>(() => DiskSnapshots.List(disk)).Kind);

        var result = DiskSnapshots.Repair(disk);
        Assert.Equal(2, result.Catalog.Snapshots.Count);
        Assert.False(result.HasErrors, string.Join("\n", result.Problems));
        // The unreadable catalog is reported as a repaired warning, naming the file.
        var lost = Assert.Single(result.Problems);
        Assert.Equal((CheckSeverity.Warning, SnapshotCatalog.PathFor(disk), "catalog"), (lost.Severity, lost.Path, lost.Structure));
        var list = DiskSnapshots.List(disk);
        var ra = list.Single(s => s.Entry.Id == a.Id);
        var rb = list.Single(s => s.Entry.Id == b.Id);
        Assert.Null(ra.Entry.Parent);
        Assert.Equal(a.Id, rb.Entry.Parent);
        Assert.True(rb.IsCurrent);
        // The rebuilt catalog works: rollback goes to b.
        Assert.Equal(b.Id, DiskSnapshots.Rollback(disk).Id);
    }

    /// <summary>
    /// Snapshot delete killed at every write (pull into the child, relink, commit): afterwards every snapshot and
    /// the current state read as before, and running the same delete again finishes it.
    /// </summary>
    [Theory]
    [InlineData(".vdi", "mid")]
    [InlineData(".vdi", "root")]
    [InlineData(".vhdx", "mid")]
    public async Task Delete_killed_at_every_write_keeps_every_state_and_finishes_on_rerun(string ext, string victim)
    {
        using var dir = new TempDirectory("snap-crash");
        string seed = Path.Combine(dir.Path, "seed");
        Directory.CreateDirectory(seed);
        string disk0 = Path.Combine(seed, "vm" + ext);
        var rng = new Random(34);
        var cur = new byte[Size];
        var snaps = new Dictionary<string, byte[]>();
        OpsKit.CreateBase(disk0, Size);
        OpsKit.RandomWrites(disk0, rng, 4, cur);
        DiskSnapshots.Create(disk0, "root");
        snaps["root"] = (byte[])cur.Clone();
        OpsKit.RandomWrites(disk0, rng, 4, cur);
        DiskSnapshots.Create(disk0, "mid");
        snaps["mid"] = (byte[])cur.Clone();
        OpsKit.RandomWrites(disk0, rng, 4, cur);
        if (victim == "mid")
        {
            DiskSnapshots.Create(disk0, "top");
            snaps["top"] = (byte[])cur.Clone();
            OpsKit.RandomWrites(disk0, rng, 2, cur);
        }
        else
        {
            // root must have a single child to be deletable: drop mid first.
            await DiskSnapshots.DeleteAsync(disk0, "mid");
            snaps.Remove("mid");
        }
        var after = snaps.Where(kv => kv.Key != victim).ToDictionary(kv => kv.Key, kv => kv.Value);

        string probe = Path.Combine(dir.Path, "probe");
        OpsKit.CopyFolder(seed, probe);
        var counting = new CrashPlan();
        await DiskSnapshots.DeleteAsync(Path.Combine(probe, "vm" + ext), victim, OpenOptions.ReadOnly with { FileOpener = counting.Opener });
        int total = counting.Writes;
        Assert.True(total > 2, $"only {total} writes");

        for (int n = 0; n < total; n++)
        {
            string work = Path.Combine(dir.Path, $"run{n}");
            OpsKit.CopyFolder(seed, work);
            string disk = Path.Combine(work, "vm" + ext);
            var plan = new CrashPlan { CrashAtWrite = n };
            await Assert.ThrowsAnyAsync<Exception>(() => DiskSnapshots.DeleteAsync(disk, victim, OpenOptions.ReadOnly with { FileOpener = plan.Opener }));
            OpsKit.AssertContent(cur, disk, $"kill at write {n}/{total}: the current state");
            foreach (var s in DiskSnapshots.Catalog(disk).Snapshots)
            {
                string p = DiskSnapshots.PathOf(disk, s);
                // The victim's layer is consumed once its delete starts (a base layer receives its child's data);
                // the pending delete in the catalog keeps every other snapshot command away from it until it is finished.
                if (s.Name == victim) continue;
                OpsKit.AssertContent(snaps[s.Name], p, $"kill at write {n}/{total}: snapshot '{s.Name}'");
            }
            Assert.Equal(ErrorKind.InvalidArgument, Assert.Throws<DiskImageException>(() => DiskSnapshots.Revert(disk, victim)).Kind);
            await DiskSnapshots.DeleteAsync(disk, victim);
            AssertSnapshots(disk, after, cur, $"rerun after a kill at write {n}");
            Directory.Delete(work, true);
        }
    }

    /// <summary>
    /// A VHDX linked clone names its parent by path. Taking a snapshot of that parent relinks the clone to the
    /// snapshot layer (the same file under its new name), so the clone keeps reading what it was made from while
    /// the disk's path moves on; killed at every write, the clone and the disk always read their own content and
    /// the next snapshot command finishes the create.
    /// </summary>
    [Fact]
    public void Snapshot_of_a_vhdx_with_a_path_linked_clone_relinks_the_clone_and_survives_a_kill_at_every_write()
    {
        using var dir = new TempDirectory("snap-pathlinked");
        string seed = Path.Combine(dir.Path, "seed");
        Directory.CreateDirectory(seed);
        var rng = new Random(71);
        var cur = new byte[Size];
        OpsKit.CreateBase(Path.Combine(seed, "vm.vhdx"), Size);
        OpsKit.RandomWrites(Path.Combine(seed, "vm.vhdx"), rng, 4, cur);
        var cloneContent = (byte[])cur.Clone();
        OpsKit.CreateChild(Path.Combine(seed, "clone.vhdx"), Path.Combine(seed, "vm.vhdx"));
        OpsKit.RandomWrites(Path.Combine(seed, "clone.vhdx"), rng, 2, cloneContent);

        string probe = Path.Combine(dir.Path, "probe");
        OpsKit.CopyFolder(seed, probe);
        var counting = new CrashPlan();
        var taken = DiskSnapshots.Create(Path.Combine(probe, "vm.vhdx"), "s1", options: OpenOptions.ReadOnly with { FileOpener = counting.Opener });
        int total = counting.Writes;
        Assert.True(total > 2, $"only {total} writes");
        using (var relinked = DiskImage.OpenLayer(Path.Combine(probe, "clone.vhdx"), false))
            Assert.Equal(DiskSnapshots.PathOf(Path.Combine(probe, "vm.vhdx"), taken), relinked.ParentLink!.CandidatePaths.First());
        OpsKit.AssertContent(cloneContent, Path.Combine(probe, "clone.vhdx"), "the clone after the snapshot");
        // The disk moves on; the clone does not.
        var later = (byte[])cur.Clone();
        OpsKit.RandomWrites(Path.Combine(probe, "vm.vhdx"), rng, 3, later);
        OpsKit.AssertContent(cloneContent, Path.Combine(probe, "clone.vhdx"), "the clone after writes to the disk");
        OpsKit.AssertContent(cur, DiskSnapshots.PathOf(Path.Combine(probe, "vm.vhdx"), taken), "snapshot s1");

        for (int n = 0; n < total; n++)
        {
            string work = Path.Combine(dir.Path, $"run{n}");
            OpsKit.CopyFolder(seed, work);
            string disk = Path.Combine(work, "vm.vhdx"), clone = Path.Combine(work, "clone.vhdx");
            var plan = new CrashPlan { CrashAtWrite = n };
            Assert.ThrowsAny<Exception>(() => DiskSnapshots.Create(disk, "s1", options: OpenOptions.ReadOnly with { FileOpener = plan.Opener }));
            OpsKit.AssertContent(cur, disk, $"kill at write {n}/{total}: the disk");
            OpsKit.AssertContent(cloneContent, clone, $"kill at write {n}/{total}: the clone");
            // The next snapshot command finishes the interrupted create first.
            DiskSnapshots.Create(disk, "s2");
            Assert.Equal(new[] { "s1", "s2" }, DiskSnapshots.Catalog(disk).Snapshots.Select(x => x.Name));
            OpsKit.AssertContent(cloneContent, clone, $"rerun after a kill at write {n}: the clone");
            OpsKit.AssertContent(cur, disk, $"rerun after a kill at write {n}: the disk");
            Directory.Delete(work, true);
        }
    }

    /// <summary>
    /// A clone whose parent was written after it was made already fails its parent check (the disk's version
    /// changed). A snapshot of the disk must not relink it to the new version: the clone would silently read the
    /// new content. It is left as it was, still refused.
    /// </summary>
    [Fact]
    public void Snapshot_create_does_not_relink_a_clone_whose_parent_changed_after_it_was_made()
    {
        using var dir = new TempDirectory("snap-stale-clone");
        string disk = dir.File("vm.vhdx"), clone = dir.File("clone.vhdx");
        var cur = new byte[Size];
        OpsKit.CreateBase(disk, Size);
        OpsKit.RandomWrites(disk, new Random(91), 2, cur);
        OpsKit.CreateChild(clone, disk);
        OpsKit.RandomWrites(disk, new Random(92), 2, cur);
        Assert.Equal(ErrorKind.ParentMismatch, Assert.Throws<DiskImageException>(() => DiskImage.Open(clone, OpenOptions.ReadOnly)).Kind);
        byte[] cloneFile = File.ReadAllBytes(clone);

        DiskSnapshots.Create(disk, "s1");
        Assert.Equal(cloneFile, File.ReadAllBytes(clone));
        Assert.Equal(ErrorKind.ParentMismatch, Assert.Throws<DiskImageException>(() => DiskImage.Open(clone, OpenOptions.ReadOnly)).Kind);
        OpsKit.AssertContent(cur, disk, "the disk after the snapshot");
    }

    /// <summary>
    /// A pending create is finished by the next snapshot command from what its step recorded. The files named there
    /// may have changed meanwhile: a clone of another disk, a base image, a file that is not an image. None of them is
    /// rewritten, and the create still finishes.
    /// </summary>
    [Fact]
    public void A_resumed_create_rewrites_only_children_that_still_link_to_the_disk()
    {
        using var dir = new TempDirectory("snap-resume-children");
        string disk = dir.File("vm.vhdx"), other = dir.File("other.vhdx");
        var cur = new byte[Size];
        OpsKit.CreateBase(disk, Size);
        OpsKit.RandomWrites(disk, new Random(93), 2, cur);
        OpsKit.CreateBase(other, Size);
        OpsKit.CreateChild(dir.File("foreign.vhdx"), other);
        OpsKit.CreateBase(dir.File("plain.vhdx"), Size);
        File.WriteAllText(dir.File("junk.vhdx"), "not an image");
        var untouched = new[] { "foreign.vhdx", "plain.vhdx", "junk.vhdx" }.ToDictionary(f => f, f => File.ReadAllBytes(dir.File(f)));

        // The step as an interrupted create would have left it, naming files that changed since.
        var entry = new SnapshotEntry { Id = Guid.NewGuid(), Name = "s1", Created = DateTimeOffset.UtcNow, File = "vm.snap-" + Guid.NewGuid().ToString("N") + ".vhdx" };
        new SnapshotCatalog
        {
            Disk = "vm.vhdx",
            Pending = new PendingSnapshotOperation { Operation = "create", Snapshot = entry, Children = untouched.Keys.Select(dir.File).Append(dir.File("gone.vhdx")).ToArray() },
        }.Save(disk);

        DiskSnapshots.Create(disk, "s2");
        Assert.Equal(new[] { "s1", "s2" }, DiskSnapshots.Catalog(disk).Snapshots.Select(x => x.Name));
        foreach (var (file, bytes) in untouched) Assert.Equal(bytes, File.ReadAllBytes(dir.File(file)));
        OpsKit.AssertContent(cur, disk, "the disk after the resumed create");
        OpsKit.AssertContent(new byte[Size], dir.File("foreign.vhdx"), "the clone of the other disk");
    }

    /// <summary>
    /// A create stopped after the disk got its snapshot name and before the disk's path got the new current state:
    /// that "snapshot" is still the live disk. Repair finishes the create (so the snapshot is frozen) instead of
    /// dropping it and listing the live disk as a snapshot.
    /// </summary>
    [Fact]
    public void Repair_finishes_a_create_interrupted_after_the_disk_got_its_snapshot_name()
    {
        using var dir = new TempDirectory("snap-repair-half-create");
        string disk = dir.File("vm.vdi");
        var cur = new byte[Size];
        OpsKit.CreateBase(disk, Size);
        OpsKit.RandomWrites(disk, new Random(95), 3, cur);
        var entry = new SnapshotEntry { Id = Guid.NewGuid(), Name = "s1", Created = DateTimeOffset.UtcNow, File = "vm.snap-" + Guid.NewGuid().ToString("N") + ".vdi" };
        new SnapshotCatalog { Disk = "vm.vdi", Pending = new PendingSnapshotOperation { Operation = "create", Snapshot = entry } }.Save(disk);
        DiskSnapshotEngine.Operations.DurableFiles.LinkOrRename(disk, dir.File(entry.File));

        var result = DiskSnapshots.Repair(disk);
        Assert.False(result.HasErrors, string.Join("\n", result.Problems));
        Assert.Contains(result.Problems, p => p.Structure == "pending operation" && p.Message.Contains("was finished"));
        Assert.Equal("s1", Assert.Single(result.Catalog.Snapshots).Name);
        // The snapshot is frozen now: the disk moves on, the snapshot does not.
        var later = (byte[])cur.Clone();
        OpsKit.RandomWrites(disk, new Random(96), 3, later);
        OpsKit.AssertContent(cur, dir.File(entry.File), "snapshot s1 after writes to the disk");
        OpsKit.AssertContent(later, disk, "the disk");
    }
}
