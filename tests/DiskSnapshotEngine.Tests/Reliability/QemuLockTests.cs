using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.IO;
using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Reliability;

/// <summary>
/// dse next to a running QEMU, with the real qemu-io and qemu-img (7.2 here): both sides speak QEMU's lock protocol
/// (OFD locks on the permission bytes), so a disk QEMU writes is refused by every dse verb that changes it, a disk
/// dse writes is refused by QEMU, readers share, and -U reads anyway.
/// </summary>
public class QemuLockTests
{
    private const int ExitLocked = 12;
    private static readonly string[] s_formats = { "vdi", "vhdx" };

    [RequiresToolFact("qemu-io")]
    public void Dse_takes_the_lock_bytes_qemu_takes_when_writing_reading_and_force_sharing()
    {
        foreach (var format in s_formats)
        {
            using var dir = new TempDirectory("qemu-bytes");
            string disk = dir.File("d." + format);
            DiskImage.Create(disk, new ImageCreateOptions(16 << 20)).Dispose();
            foreach (var (mode, readOnly, forceShare) in new[]
                     { (FileLockMode.Exclusive, false, false), (FileLockMode.Shared, true, false), (FileLockMode.ForceShare, true, true) })
            {
                SortedSet<long> ours;
                using (ImageFile.Open(disk, mode)) ours = OfdBytes(disk);
                SortedSet<long> qemus;
                using (QemuHolder.Start(disk, format, readOnly, forceShare)) qemus = OfdBytes(disk);
                Assert.True(qemus.SetEquals(ours), $"{format} {mode}: dse locks bytes [{string.Join(",", ours)}], qemu-io [{string.Join(",", qemus)}]");
                Assert.Contains(100L, ours);
            }
        }
    }

    [RequiresToolFact("qemu-io", "qemu-img")]
    public async Task A_disk_qemu_writes_is_refused_by_every_dse_verb_that_changes_it_naming_qemu()
    {
        foreach (var format in s_formats)
        {
            using var dir = new TempDirectory("qemu-holds");
            string disk = dir.File("d." + format), other = dir.File("o." + format), input = dir.File("in.bin");
            Assert.Equal(0, (await CliRunner.RunAsync("create", disk, "--size", "16M")).ExitCode);
            Assert.Equal(0, (await CliRunner.RunAsync("create", other, "--size", "16M")).ExitCode);
            File.WriteAllBytes(input, RandomData.Bytes(70_000, 48));
            Assert.Equal(0, (await CliRunner.RunAsync("write", disk, "--offset", "4096", "--input", input)).ExitCode);
            var before = Snapshot(dir.Path);

            using var qemu = QemuHolder.Start(disk, format);
            string[][] verbs =
            {
                new[] { "write", disk, "--offset", "0", "--input", input },
                new[] { "merge", disk },
                new[] { "merge", "--pull", disk },
                new[] { "compact", disk },
                new[] { "snapshot", "create", disk, "--name", "s" },
                new[] { "snapshot", "revert", disk, "--name", "s" },
                new[] { "snapshot", "delete", disk, "--name", "s" },
                new[] { "snapshot", "repair", disk },
                new[] { "rollback", disk },
                new[] { "rebase", disk, "--parent", other },
                new[] { "info", disk },
                new[] { "export", disk, dir.File("out.raw") },
            };
            foreach (var args in verbs)
                await AssertHeldByQemu(qemu, args);
            Assert.Equal(before, Snapshot(dir.Path));

            // -U reads anyway, with the warning.
            var forced = await CliRunner.RunAsync("export", "-U", disk, "-");
            Assert.Equal(0, forced.ExitCode);
            Assert.Contains("dse: warning: --force-share", forced.StdErr);
            Assert.Single(forced.StdErr.Trim().Split('\n'));
            var expected = new byte[16 << 20];
            File.ReadAllBytes(input).CopyTo(expected, 4096);
            Assert.True(expected.AsSpan().SequenceEqual(forced.StdOutBytes), $"{format}: the -U export differs");
            foreach (var args in new[] { new[] { "info", "-U", disk }, new[] { "map", "--force-share", disk }, new[] { "check", "-U", disk }, new[] { "compare", "-U", disk, disk } })
            {
                var r = await CliRunner.RunAsync(args);
                Assert.True(r.ExitCode == 0, $"{format}: dse {string.Join(' ', args)}: {r}");
                Assert.Contains("may be inconsistent", r.StdErr);
            }
        }
    }

    [RequiresToolFact("qemu-io", "qemu-img")]
    public async Task While_dse_writes_a_disk_qemu_cannot_write_or_open_it_unless_forced_to_share()
    {
        foreach (var format in s_formats)
        {
            using var dir = new TempDirectory("dse-holds");
            string disk = dir.File("d." + format);
            Assert.Equal(0, (await CliRunner.RunAsync("create", disk, "--size", "16M")).ExitCode);

            using var writer = await StartHoldingWriter(disk);

            var write = ExternalTool.Run("qemu-io", "-f", format, "-c", "write 0 512", disk);
            Assert.NotEqual(0, write.ExitCode);
            Assert.Contains("Failed to get \"write\" lock", write.StdErr);
            var info = ExternalTool.Run("qemu-img", "info", disk);
            Assert.NotEqual(0, info.ExitCode);
            Assert.Contains("lock", info.StdErr);
            Assert.Equal(0, ExternalTool.Run("qemu-img", "info", "-U", disk).ExitCode);

            var ours = await CliRunner.RunAsync("info", disk);
            Assert.Equal(ExitLocked, ours.ExitCode);
            Assert.Contains($"pid {writer.Id} (writing: dse write", ours.StdErr);
            Assert.Equal(0, (await CliRunner.RunAsync("info", "-U", disk)).ExitCode);

            writer.StandardInput.Close();
            await writer.WaitForExitAsync();
            Assert.Equal(0, writer.ExitCode);
            // Released with the process: QEMU may write now.
            Assert.Equal(0, ExternalTool.Run("qemu-io", "-f", format, "-c", "write 0 512", disk).ExitCode);
        }
    }

    [RequiresToolFact("qemu-io", "qemu-img")]
    public async Task Parents_of_a_child_dse_writes_are_read_locked_against_qemu_and_the_other_way_round()
    {
        foreach (var format in s_formats)
        {
            using var dir = new TempDirectory("qemu-parent");
            string parent = dir.File("p." + format), child = dir.File("c." + format), input = dir.File("in.bin");
            Assert.Equal(0, (await CliRunner.RunAsync("create", parent, "--size", "16M")).ExitCode);
            Assert.Equal(0, (await CliRunner.RunAsync("create", child, "--parent", parent)).ExitCode);
            File.WriteAllBytes(input, new byte[] { 7, 7, 7 });

            // dse writes the child: QEMU cannot open the parent read-write, but may read it (readers share).
            using (var writer = await StartHoldingWriter(child))
            {
                var write = ExternalTool.Run("qemu-io", "-f", format, "-c", "write 0 512", parent);
                Assert.NotEqual(0, write.ExitCode);
                Assert.Contains("Failed to get \"write\" lock", write.StdErr);
                Assert.Equal(0, ExternalTool.Run("qemu-img", "info", parent).ExitCode);
                writer.StandardInput.Close();
                await writer.WaitForExitAsync();
                Assert.Equal(0, writer.ExitCode);
            }

            // QEMU writes the parent: dse cannot write (or read) the child through it.
            var before = Snapshot(dir.Path);
            using (var qemu = QemuHolder.Start(parent, format))
            {
                Assert.Contains(parent, await AssertHeldByQemu(qemu, "write", child, "--offset", "0", "--input", input));
                Assert.Contains(parent, await AssertHeldByQemu(qemu, "info", "--chain", child));
                Assert.Equal(0, (await CliRunner.RunAsync("info", "--chain", "-U", child)).ExitCode);
            }
            Assert.Equal(before, Snapshot(dir.Path));
        }
    }

    [RequiresToolFact("qemu-io", "qemu-img")]
    public async Task Every_verb_that_writes_a_qcow2_vhd_or_raw_image_or_its_qcow2_parent_is_refused_while_qemu_holds_it()
    {
        foreach (var (ext, qemuFormat) in new[] { ("qcow2", "qcow2"), ("vhd", "vpc"), ("img", "raw") })
        {
            using var dir = new TempDirectory("qemu-holds-all");
            string disk = dir.File("d." + ext), other = dir.File("o." + ext), input = dir.File("in.bin");
            await CliRunner.OkAsync("create", disk, "--size", "16M");
            await CliRunner.OkAsync("create", other, "--size", "16M");
            File.WriteAllBytes(input, RandomData.Bytes(70_000, 49));
            await CliRunner.OkAsync("write", disk, "--offset", "4096", "--input", input);
            var before = Snapshot(dir.Path);
            using (var qemu = QemuHolder.Start(disk, qemuFormat))
            {
                foreach (var args in new[]
                         {
                             new[] { "write", disk, "--offset", "0", "--input", input, "--force" }, new[] { "compact", disk },
                             new[] { "resize", disk, "--size", "2G" }, new[] { "resize", disk, "--size", "8M", "--shrink" },
                             new[] { "set-identity", disk, "--new" }, new[] { "seal", disk }, new[] { "unseal", disk },
                             new[] { "snapshot", "create", disk, "--name", "s" }, new[] { "snapshot", "repair", disk }, new[] { "rollback", disk },
                             new[] { "check", "--repair", disk }, new[] { "clone", "--linked", disk, dir.File("c2.qcow2") },
                             new[] { "clone", disk, dir.File("full." + ext) }, new[] { "export", disk, dir.File("out.raw") },
                             new[] { "vm", "register", "libvirt", "--name", "x", "--disk", disk, "--overlay", dir.File("ov.qcow2"), "--dry-run" },
                         })
                    await AssertHeldByQemu(qemu, args);
            }
            Assert.Equal(before, Snapshot(dir.Path));
            if (ext == "vhd") continue; // qemu reads no VHD child's parent

            // A qcow2 child QEMU writes: its parent is read-locked, and every verb that would change it is refused.
            string child = dir.File("c.qcow2"), sibling = dir.File("s.qcow2");
            await CliRunner.OkAsync("create", child, "--parent", disk);
            await CliRunner.OkAsync("create", sibling, "--parent", disk);
            await CliRunner.OkAsync("write", sibling, "--offset", "0", "--input", input);
            before = Snapshot(dir.Path);
            using (var qemu = QemuHolder.Start(child, "qcow2", backing: disk))
            {
                var verbs = new List<string[]>
                {
                    new[] { "merge", sibling, "--force" }, new[] { "write", disk, "--offset", "0", "--input", input },
                    new[] { "resize", disk, "--size", "32M" },
                    new[] { "merge", child, "--force" }, new[] { "reset", child }, new[] { "rebase", child, "--parent", other, "--unsafe" },
                };
                // A raw parent has no block map to compact and takes no snapshot (exit 5 before any lock).
                if (ext != "img") verbs.AddRange(new[] { new[] { "compact", disk }, new[] { "snapshot", "create", disk, "--name", "s" } });
                foreach (var args in verbs)
                {
                    var r = await CliRunner.RunAsync(args);
                    Assert.True(r.ExitCode == ExitLocked, $"{ext}: dse {string.Join(' ', args)}: {r}");
                    Assert.Contains($"QEMU pid {qemu.Pid}", r.StdErr);
                }
            }
            Assert.Equal(before, Snapshot(dir.Path));
        }
    }

    // Starts `dse write IMAGE --offset 0 --input -` and returns once its first chunk is in the image: its chain, with
    // every parent's lock, is open then, and stays open while the process waits for the rest of its stdin. (Waiting
    // for a lock alone is not enough: the writer's check for children opens and closes every image of the folder
    // before it opens the parents.)
    private static async Task<System.Diagnostics.Process> StartHoldingWriter(string image)
    {
        long before = new FileInfo(image).Length;
        var writer = CliRunner.Start("write", image, "--offset", "0", "--input", "-");
        await writer.StandardInput.BaseStream.WriteAsync(RandomData.Bytes(DiskSnapshotEngine.Cli.Commands.WriteCommand.ChunkSize, 164));
        await writer.StandardInput.BaseStream.FlushAsync();
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (new FileInfo(image).Length == before)
        {
            if (writer.HasExited || DateTime.UtcNow > deadline)
                throw new Xunit.Sdk.XunitException($"dse write did not start writing {image}: {await writer.StandardError.ReadToEndAsync()}");
            await Task.Delay(20);
        }
        return writer;
    }

    // Runs a verb in-process: it must exit 12 naming the QEMU process as the writer holding the file. Returns stderr.
    private static async Task<string> AssertHeldByQemu(QemuHolder qemu, params string[] args)
    {
        var r = await CliRunner.RunAsync(args);
        Assert.True(r.ExitCode == ExitLocked, $"dse {string.Join(' ', args)}: {r}");
        Assert.Contains($"held by QEMU pid {qemu.Pid} (writing: qemu-io", r.StdErr);
        return r.StdErr;
    }

    // Every byte offset covered by an OFD lock on the file (all holders).
    private static SortedSet<long> OfdBytes(string path)
    {
        var bytes = new SortedSet<long>();
        foreach (var line in LockProbe.Locks(path).Where(l => l.Contains("OFDLCK")))
        {
            var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            long start = long.Parse(f[^2]), end = long.Parse(f[^1]);
            for (long b = start; b <= end; b++) bytes.Add(b);
        }
        return bytes;
    }

    // File names and content hashes of a folder: "nothing changed" means this is equal before and after.
    private static string Snapshot(string folder) => string.Join("\n", Directory.GetFiles(folder).Order(StringComparer.Ordinal)
        .Select(f => $"{Path.GetFileName(f)} {ContentHash.OfFile(f)}"));
}
