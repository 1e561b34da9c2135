using System.Text.Json;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;
using static DiskSnapshotEngine.Tests.Formats.Qcow2.Qcow2TestKit;

namespace DiskSnapshotEngine.Tests.Formats.Qcow2;

/// <summary>
/// The read-only verbs with <c>--internal-snapshot</c> against qemu: <c>dse export --internal-snapshot S</c> equals
/// <c>qemu-img convert -l snapshot.name=S</c> byte for byte (compressed, extended L2 over a backing file), clone,
/// compare, map, info and serve read the same state, and a wrong snapshot or a write is refused with a typed error.
/// </summary>
public sealed class Qcow2InternalSnapshotTests
{
    private const long Size = 6L * MiB;

    private static Task<CliResult> Dse(params string[] args) => CliRunner.OkAsync(args);

    // qemu's reading of a snapshot, as a raw file: -l selects it by name (snapshot.name=) or id (snapshot.id=).
    private static string QemuSnapshotRaw(string image, string selector, string output)
    {
        QemuImg("convert", "-f", "qcow2", "-O", "raw", "-l", selector, image, output);
        return output;
    }

    private static void AssertSameBytes(string expected, string actual)
    {
        var a = File.ReadAllBytes(expected);
        var b = File.ReadAllBytes(actual);
        Assert.Equal(a.Length, b.Length);
        int same = a.AsSpan().CommonPrefixLength(b);
        Assert.True(same == a.Length, $"{actual} differs from {expected} at byte {same}");
    }

    // A qemu-compressed image with snapshot "gold" (compressed data only), then writes (data, zeroes, a compressed
    // cluster) and snapshot "patched", then more writes in the current state.
    private static string CompressedWithSnapshots(TempDirectory dir)
    {
        string raw = MakeRaw(dir.File("content.raw"), Size, 12);
        string image = dir.File("c.qcow2");
        QemuImg("convert", "-c", "-f", "raw", "-O", "qcow2", raw, image);
        File.Delete(raw);
        QemuImg("snapshot", "-c", "gold", image);
        QemuIo(image, "write -P 0x61 100000 300000", "write -z 2M 200k", "write -c -P 0x62 4M 64k");
        QemuImg("snapshot", "-c", "patched", image);
        QemuIo(image, "write -P 0x63 0 5M");
        return image;
    }

    [RequiresToolFact("qemu-img", "qemu-io")]
    public async Task Export_of_each_snapshot_of_a_compressed_image_equals_qemu_img_convert_l()
    {
        using var dir = new TempDirectory("qcow2-isnap");
        string image = CompressedWithSnapshots(dir);
        foreach (var (selector, dse) in new[] { ("snapshot.name=gold", "gold"), ("snapshot.name=patched", "patched"), ("snapshot.id=1", "1"), ("snapshot.id=2", "2") })
        {
            string expected = QemuSnapshotRaw(image, selector, dir.File("q.raw"));
            await Dse("export", "--internal-snapshot", dse, image, dir.File("d.raw"));
            AssertSameBytes(expected, dir.File("d.raw"));
            File.Delete(dir.File("d.raw"));
        }
        // The current state is still the current state, and the snapshots are not the same as it.
        await Dse("export", image, dir.File("now.raw"));
        Assert.NotEqual(ContentHash.OfFile(dir.File("now.raw")), ContentHash.OfFile(dir.File("q.raw")));
        var map = await Dse("map", "--internal-snapshot", "gold", image, "--json");
        Assert.Contains("compressed", map.StdOut);
        AssertQemuCheckClean(image);
    }

    [RequiresToolFact("qemu-img", "qemu-io")]
    public async Task Export_of_an_extended_l2_overlay_snapshot_reads_subclusters_and_the_backing_file_like_qemu()
    {
        using var dir = new TempDirectory("qcow2-isnap");
        MakeRaw(dir.File("base.raw"), Size, 21);
        string image = dir.File("x.qcow2");
        QemuImg("create", "-f", "qcow2", "-o", "extended_l2=on,cluster_size=32k", "-b", "base.raw", "-F", "raw", image, Size.ToString());
        QemuIo(image, "write -P 0x71 1536 1024", "write -z 40k 2k", "write -P 0x72 1M 100000", "write -c -P 0x73 2M 32k");
        QemuImg("snapshot", "-c", "one", image);
        QemuIo(image, "write -P 0x74 1024 4096", "write -z 1M 4k", "discard 2M 32k");
        QemuImg("snapshot", "-c", "two", image);
        QemuIo(image, "write -P 0x75 0 3M");
        foreach (var name in new[] { "one", "two" })
        {
            string expected = QemuSnapshotRaw(image, "snapshot.name=" + name, dir.File("q.raw"));
            await Dse("export", "--internal-snapshot", name, image, dir.File("d.raw"));
            AssertSameBytes(expected, dir.File("d.raw"));
            File.Delete(dir.File("d.raw"));
        }
    }

    [RequiresToolFact("qemu-img", "qemu-io")]
    public async Task A_snapshot_taken_before_a_resize_reads_at_its_own_size()
    {
        using var dir = new TempDirectory("qcow2-isnap");
        string image = dir.File("r.qcow2");
        QemuImg("create", "-f", "qcow2", image, "4M");
        QemuIo(image, "write -P 0x41 1M 2M");
        QemuImg("snapshot", "-c", "small", image);
        QemuImg("resize", image, "8M");
        QemuIo(image, "write -P 0x42 6M 1M");
        var info = JsonDocument.Parse((await Dse("info", "--internal-snapshot", "small", image, "--json")).StdOut).RootElement;
        Assert.Equal(4L * MiB, info.GetProperty("virtualSize").GetInt64());
        // qemu-img convert -l keeps the current size: the snapshot's 4 MiB, then zeros.
        var qemu = File.ReadAllBytes(QemuSnapshotRaw(image, "snapshot.name=small", dir.File("q.raw")));
        await Dse("export", "--internal-snapshot", "small", image, dir.File("d.raw"));
        var ours = File.ReadAllBytes(dir.File("d.raw"));
        Assert.Equal(4L * MiB, ours.Length);
        Assert.True(qemu.AsSpan(0, ours.Length).SequenceEqual(ours));
        Assert.True(qemu.AsSpan(ours.Length).IndexOfAnyExcept((byte)0) < 0);
    }

    [RequiresToolFact("qemu-img", "qemu-io")]
    public async Task Clone_compare_and_info_read_the_snapshot_and_leave_the_image_unchanged()
    {
        using var dir = new TempDirectory("qcow2-isnap");
        string image = CompressedWithSnapshots(dir);
        string before = ContentHash.OfFile(image);
        string expected = QemuSnapshotRaw(image, "snapshot.name=patched", dir.File("q.raw"));
        foreach (var ext in new[] { "vhdx", "qcow2", "img" })
        {
            string clone = dir.File("clone." + ext);
            await Dse("clone", "--internal-snapshot", "patched", image, clone);
            await Dse("compare", clone, expected);
            if (ext == "qcow2") AssertQemuCheckClean(clone);
        }
        await Dse("compare", "--internal-snapshot", "patched", image, expected);
        var differ = await CliRunner.RunAsync("compare", "--internal-snapshot", "gold", image, expected);
        Assert.True(differ.ExitCode == 1, differ.ToString());
        var info = await Dse("info", "--internal-snapshot", "2", image, "--verbose");
        Assert.Contains("snapshot 2 'patched', read-only", info.StdOut);
        Assert.Equal(before, ContentHash.OfFile(image));
    }

    [RequiresToolFact("qemu-img", "qemu-io")]
    public async Task Serve_read_only_exports_the_snapshot_over_nbd()
    {
        using var dir = new TempDirectory("qcow2-isnap");
        string image = CompressedWithSnapshots(dir);
        string expected = QemuSnapshotRaw(image, "snapshot.name=gold", dir.File("q.raw"));
        string socket = dir.File("s.sock");
        using var serve = CliRunner.Start(["serve", image, "--read-only", "--internal-snapshot", "gold", "--socket", socket]);
        serve.StandardInput.Close();
        var stderr = serve.StandardError.ReadToEndAsync();
        try
        {
            string? line = await serve.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromMinutes(1));
            Assert.True(line is not null && line.Contains(socket), $"dse serve: {line} {(serve.HasExited ? await stderr : "")}");
            QemuImg("convert", "-f", "raw", "-O", "raw", $"nbd+unix:///?socket={socket}", dir.File("n.raw"));
            AssertSameBytes(expected, dir.File("n.raw"));
        }
        finally
        {
            ExternalTool.RunChecked("kill", "-TERM", serve.Id.ToString());
            await serve.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(1));
        }
        Assert.True(serve.ExitCode == 0, await stderr);
    }

    [RequiresToolFact("qemu-img", "qemu-io")]
    public async Task A_snapshot_that_does_not_exist_or_a_write_is_refused_with_a_typed_error_and_nothing_changes()
    {
        using var dir = new TempDirectory("qcow2-isnap");
        string image = CompressedWithSnapshots(dir);
        string before = ContentHash.OfFile(image);

        var unknown = await CliRunner.RunAsync("export", "--internal-snapshot", "nope", image, dir.File("d.raw"));
        Assert.True(unknown.ExitCode == 14, unknown.ToString());
        Assert.Contains(image, unknown.StdErr);
        Assert.Contains("1 'gold', 2 'patched'", unknown.StdErr);
        Assert.False(File.Exists(dir.File("d.raw")));

        QemuImg("convert", "-O", "raw", image, dir.File("plain.raw"));
        var raw = await CliRunner.RunAsync("info", "--internal-snapshot", "gold", dir.File("plain.raw"));
        Assert.True(raw.ExitCode == 14, raw.ToString());
        Assert.Contains("no internal snapshots", raw.StdErr);

        var serve = await CliRunner.RunAsync("serve", image, "--internal-snapshot", "gold", "--socket", dir.File("s.sock"));
        Assert.True(serve.ExitCode == 2, serve.ToString());
        var linked = await CliRunner.RunAsync("clone", "--linked", "--internal-snapshot", "gold", image, dir.File("l.qcow2"));
        Assert.True(linked.ExitCode == 2, linked.ToString());
        Assert.False(File.Exists(dir.File("l.qcow2")));

        var e = Assert.Throws<DiskImageException>(() => DiskImage.Open(image, OpenOptions.ReadWrite with { InternalSnapshot = "gold" }).Dispose());
        Assert.Equal(ErrorKind.ReadOnly, e.Kind);
        var unknownLib = Assert.Throws<DiskImageException>(() => DiskImage.Open(image, OpenOptions.ReadOnly with { InternalSnapshot = "3" }).Dispose());
        Assert.Equal(ErrorKind.InvalidArgument, unknownLib.Kind);
        using (var view = DiskImage.Open(image, OpenOptions.ReadOnly with { InternalSnapshot = "gold" }))
        {
            Assert.False(view.Top.IsWritable);
            Assert.Equal(ErrorKind.ReadOnly, Assert.Throws<DiskImageException>(() => view.Top.Write(0, new byte[512])).Kind);
        }
        Assert.Equal(before, ContentHash.OfFile(image));
    }
    /// <summary>
    /// An image named by a relative path: the refusal of --internal-snapshot (a VDI has none; a snapshot opens only
    /// read-only) names the image's full path, as every other error does, not the words the user typed.
    /// </summary>
    [Fact]
    public async Task An_internal_snapshot_refusal_names_the_full_path_of_an_image_given_relatively()
    {
        using var dir = new TempDirectory("qcow2-isnap-path");
        string image = dir.File("disk.vdi");
        await CliRunner.OkAsync("create", image, "--size", "1M");
        string relative = Path.GetRelativePath(Environment.CurrentDirectory, image);
        Assert.False(Path.IsPathRooted(relative));

        var none = Assert.Throws<DiskImageException>(() => DiskImage.Open(relative, OpenOptions.ReadOnly with { InternalSnapshot = "x" }).Dispose());
        Assert.Equal(ErrorKind.InvalidArgument, none.Kind);
        Assert.Equal(image, none.Path);
        Assert.StartsWith($"{image}: ", none.Message);
        var written = Assert.Throws<DiskImageException>(() => DiskImage.Open(relative, OpenOptions.ReadWrite with { InternalSnapshot = "x" }).Dispose());
        Assert.Equal(ErrorKind.ReadOnly, written.Kind);
        Assert.Equal(image, written.Path);
    }
}
