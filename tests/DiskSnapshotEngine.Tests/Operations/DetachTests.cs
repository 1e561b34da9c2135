using System.Text.Json;
using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Operations;
using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Operations;

/// <summary><c>dse detach IMAGE</c>: a linked clone becomes a base image in place, same content, path and identity.</summary>
public class DetachTests
{
    private const long Size = 6L << 20;

    // base <- mid <- img <- kid, random writes in each (partial sectors and zero runs included).
    private static (string Img, byte[] ImgModel, byte[] KidModel) Chain(TempDirectory dir, string ext, int seed)
    {
        var rng = new Random(seed);
        var model = new byte[Size];
        OpsKit.CreateBase(dir.File("base" + ext), Size, ext == ".vhdx" ? 1 << 20 : null);
        OpsKit.RandomWrites(dir.File("base" + ext), rng, 8, model);
        OpsKit.CreateChild(dir.File("mid" + ext), dir.File("base" + ext));
        OpsKit.RandomWrites(dir.File("mid" + ext), rng, 6, model);
        OpsKit.CreateChild(dir.File("img" + ext), dir.File("mid" + ext));
        OpsKit.RandomWrites(dir.File("img" + ext), rng, 6, model);
        var imgModel = (byte[])model.Clone();
        OpsKit.CreateChild(dir.File("kid" + ext), dir.File("img" + ext));
        OpsKit.RandomWrites(dir.File("kid" + ext), rng, 3, model);
        return (dir.File("img" + ext), imgModel, model);
    }

    [Theory]
    [InlineData(".vhdx", 81)]
    [InlineData(".vhdx", 82)]
    [InlineData(".vdi", 83)]
    [InlineData(".vdi", 84)]
    public async Task Detach_makes_a_base_image_with_the_same_content_identity_and_children(string ext, int seed)
    {
        using var dir = new TempDirectory("detach");
        var (img, imgModel, kidModel) = Chain(dir, ext, seed);
        var parentBytes = File.ReadAllBytes(dir.File("mid" + ext));
        ImageIdentity before;
        using (var l = DiskImage.OpenLayer(img, false)) before = l.Identity;

        var r = await CliRunner.RunAsync("detach", img, "--json");
        Assert.True(r.ExitCode == 0, r.ToString());
        using (var doc = JsonDocument.Parse(r.StdOut))
            Assert.Equal(2, doc.RootElement.GetProperty("formerParents").GetArrayLength());
        using (var chain = DiskImage.Open(img))
        {
            Assert.Single(chain.Layers);
            Assert.Null(chain.Top.ParentLink);
            Assert.NotEqual(ImageType.Differencing, chain.Top.Type);
            Assert.Equal(before, chain.Top.Identity);
            // No errors; a VHDX's sector bitmap blocks are left as leaked space (compact reclaims it).
            var report = chain.Check();
            Assert.False(report.HasErrors, string.Join("; ", report.Problems));
            if (ext == ".vdi") Assert.True(report.IsClean, string.Join("; ", report.Problems));
        }
        OpsKit.AssertContent(imgModel, img, "the detached image");
        OpsKit.AssertContent(kidModel, dir.File("kid" + ext), "the detached image's child");
        Assert.Equal(parentBytes, File.ReadAllBytes(dir.File("mid" + ext)));
        // qemu reads base VHDX and VDI images (not their differencing children).
        if (ExternalTool.Has("qemu-img"))
        {
            ExternalTool.RunChecked("qemu-img", "check", img);
            var raw = dir.File("img.raw");
            File.WriteAllBytes(raw, imgModel);
            ExternalTool.RunChecked("qemu-img", "compare", "-f", ext.TrimStart('.'), "-F", "raw", img, raw);
        }
        // A rerun (as after an interruption past the last step) is a no-op.
        var again = await CliRunner.RunAsync("detach", img);
        Assert.True(again.ExitCode == 0, again.ToString());
        Assert.Contains("already independent", again.StdOut);
    }

    /// <summary>Killed at every write: the image always reads the same; a rerun finishes and leaves a base image.</summary>
    [Theory]
    [InlineData(".vhdx")]
    [InlineData(".vdi")]
    public async Task Detach_killed_at_any_write_reads_the_same_and_a_rerun_finishes(string ext)
    {
        using var dir = new TempDirectory("detach-crash");
        var (img, imgModel, _) = Chain(dir, ext, 85);
        File.Delete(dir.File("kid" + ext));
        var master = File.ReadAllBytes(img);
        bool completed = false;
        for (int n = 0; !completed; n++)
        {
            Assert.True(n < 4000, "detach never completed");
            File.WriteAllBytes(img, master);
            var plan = new CrashPlan { CrashAtWrite = n };
            try { await Detach.RunAsync(img, OpenOptions.ReadOnly with { FileOpener = plan.Opener }); completed = true; }
            catch (DiskImageException e) when (plan.Crashed && e.Kind == ErrorKind.Io) { }
            OpsKit.AssertContent(imgModel, img, $"after a kill at write {n}");
            if (completed) continue;
            await Detach.RunAsync(img);
            OpsKit.AssertContent(imgModel, img, $"after a rerun following a kill at write {n}");
            using var chain = DiskImage.Open(img);
            Assert.Null(chain.Top.ParentLink);
            var report = chain.Check();
            Assert.False(report.HasErrors, $"check after a kill at write {n} and a rerun: {string.Join("; ", report.Problems)}");
        }
    }

    /// <summary>
    /// A real dse process killed with SIGKILL in the middle of its (slowed) copy: the kill is sent once the image file has
    /// been written to (so the detach is under way, whatever the machine's load), nothing reads differently
    /// afterwards, and a rerun finishes.
    /// </summary>
    [LinuxTheory("kills a child process with SIGKILL")]
    [InlineData(".vdi")]
    [InlineData(".vhdx")]
    public async Task Detach_killed_with_sigkill_reads_the_same_and_a_rerun_finishes(string ext)
    {
        int killed = 0;
        for (int attempt = 0; attempt < 4 && killed < 2; attempt++)
        {
            using var dir = new TempDirectory("detach-kill");
            var (img, imgModel, kidModel) = Chain(dir, ext, 87 + attempt);
            var original = Stamp(img);
            // The writer sleeps a second after each piece: once a piece has landed, the run is surely not finished.
            using (var p = CliRunner.StartSlowed(1000, "detach", img))
            {
                var drainOut = p.StandardOutput.ReadToEndAsync();
                var drainErr = p.StandardError.ReadToEndAsync();
                while (!p.HasExited && Stamp(img) == original)
                    await Task.Delay(20);
                if (!p.HasExited) { p.Kill(); killed++; }
                await p.WaitForExitAsync();
                await Task.WhenAll(drainOut, drainErr);
            }
            OpsKit.AssertContent(imgModel, img, $"after the kill (attempt {attempt})");
            OpsKit.AssertContent(kidModel, dir.File("kid" + ext), "the child after the kill");
            var rerun = await CliRunner.RunAsync("detach", img);
            Assert.True(rerun.ExitCode == 0, rerun.ToString());
            OpsKit.AssertContent(imgModel, img, "after the rerun");
            OpsKit.AssertContent(kidModel, dir.File("kid" + ext), "the child after the rerun");
            using var chain = DiskImage.Open(img);
            Assert.Single(chain.Layers);
            Assert.False(chain.Check().HasErrors, string.Join("; ", chain.Check().Problems));
        }
        Assert.True(killed >= 1, "no run was still going when it was killed");
    }

    // What stat says of the file: dse holds it open with an exclusive lock, so its bytes cannot be read meanwhile.
    private static (DateTime, long) Stamp(string path)
    {
        var info = new FileInfo(path);
        return (info.LastWriteTimeUtc, info.Length);
    }

    [Theory]
    [InlineData(".qcow2")]
    [InlineData(".vhd")]
    public async Task Formats_without_the_in_place_step_are_refused_unchanged(string ext)
    {
        using var dir = new TempDirectory("detach-unsupported");
        OpsKit.CreateBase(dir.File("base" + ext), Size);
        OpsKit.CreateChild(dir.File("img" + ext), dir.File("base" + ext));
        OpsKit.RandomWrites(dir.File("img" + ext), new Random(86), 3, new byte[Size]);
        var bytes = File.ReadAllBytes(dir.File("img" + ext));
        var r = await CliRunner.RunAsync("detach", dir.File("img" + ext));
        Assert.Equal(5, r.ExitCode);
        Assert.Equal(bytes, File.ReadAllBytes(dir.File("img" + ext)));
    }
    /// <summary>
    /// A disk whose current state reads through one of its own snapshots: detaching it would leave the catalog saying
    /// the current state descends from that snapshot while it no longer does (the VirtualBox registration then found
    /// two base images, exit 11). Refused as a plain merge of a snapshot's layer is (exit 15, the snapshot named, the
    /// way out said), nothing changed; once the snapshot is deleted the detach runs.
    /// </summary>
    [Theory]
    [InlineData(".vhdx")]
    [InlineData(".vdi")]
    public async Task Detach_of_a_disk_over_its_own_snapshot_is_refused_until_the_snapshot_is_deleted(string ext)
    {
        using var dir = new TempDirectory("detach-snapshot");
        string golden = dir.File("golden" + ext), disk = dir.File("disk" + ext), data = dir.File("d.bin");
        await CliRunner.OkAsync("create", golden, "--size", "8M");
        await CliRunner.OkAsync("create", disk, "--parent", golden);
        await File.WriteAllBytesAsync(data, RandomData.Bytes(4096, 7));
        await CliRunner.OkAsync("write", disk, "--offset", "1M", "--input", data);
        await CliRunner.OkAsync("snapshot", "create", disk, "--name", "s1");
        await CliRunner.OkAsync("write", disk, "--offset", "2M", "--input", data);
        var files = Directory.GetFiles(dir.Path).ToDictionary(f => f, ContentHash.OfFile);

        var refused = await CliRunner.RunAsync("detach", disk);
        Assert.True(refused.ExitCode == 15, refused.ToString());
        Assert.Contains($"dse: error: {disk}: cannot detach: ", refused.StdErr);
        Assert.Contains("is snapshot 's1'; use 'dse snapshot delete' so that the catalog stays right", refused.StdErr);
        Assert.Equal(files, Directory.GetFiles(dir.Path).ToDictionary(f => f, ContentHash.OfFile));

        string before = dir.File("before.raw");
        await CliRunner.OkAsync("export", disk, before);
        await CliRunner.OkAsync("snapshot", "delete", disk, "--name", "s1");
        await CliRunner.OkAsync("detach", disk);
        Assert.Equal(JsonValueKind.Null, (await CliRunner.InfoAsync(disk)).GetProperty("parent").ValueKind);
        Assert.Equal(0, (await CliRunner.RunAsync("compare", disk, before)).ExitCode);
    }
}
