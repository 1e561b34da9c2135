using System.Diagnostics;
using System.Text.Json;
using DiskSnapshotEngine.Cli;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Nbd;

/// <summary><c>dse serve</c> as a real process: what it prints, how it stops on signals, and what a SIGKILL leaves behind.</summary>
public class NbdProcessTests
{
    [RequiresToolFact("qemu-io")]
    public async Task Qemu_io_write_lands_in_the_top_layer_and_sigterm_stops_cleanly_after_flushing()
    {
        using var dir = new TempDirectory("nbd-proc");
        var paths = NbdTestImages.Chain(dir.Path, "vhdx", 2, 1L << 30, 32 << 20, seed: 8);
        var parentHash = ContentHash.OfFile(paths[0]);
        string socket = dir.File("disk.sock");
        using (var serve = new ServeProcess(paths[^1], "--socket", socket))
        {
            Assert.Equal($"serving {paths[^1]} (1 GiB (1073741824 bytes), read-write) at nbd+unix:///?socket={socket}", serve.FirstLine);
            ExternalTool.RunChecked("qemu-io", "-f", "raw", "-c", "write -P 0x5a 700M 1M", $"nbd+unix:///?socket={socket}");
            serve.Signal("TERM");
            var (code, stderr) = await serve.WaitAsync();
            Assert.True(code == 0, stderr);
            Assert.Contains("stopped serving; the image is flushed", stderr);
        }
        Assert.False(File.Exists(socket));
        Assert.Equal(parentHash, ContentHash.OfFile(paths[0]));
        var check = await CliRunner.RunAsync("check", paths[^1]);
        Assert.True(check.ExitCode == 0, check.ToString());
        var export = await CliRunner.RunAsync("export", paths[^1], dir.File("out.raw"));
        Assert.Equal(0, export.ExitCode);
        using var f = File.OpenRead(dir.File("out.raw"));
        f.Position = 700L << 20;
        var got = new byte[1 << 20];
        f.ReadExactly(got);
        Assert.All(got, b => Assert.Equal(0x5a, b));
    }

    [RequiresToolFact("nbdinfo")]
    public async Task Json_names_the_tcp_port_and_sigint_stops_with_exit_0()
    {
        using var dir = new TempDirectory("nbd-proc");
        var image = dir.File("d.vdi");
        DiskImage.Create(image, new DiskSnapshotEngine.Formats.ImageCreateOptions(64 << 20)).Dispose();
        using var serve = new ServeProcess(image, "--port", "0", "--read-only", "--export-name", "lab disk", "--json");
        var json = JsonDocument.Parse(serve.FirstLine).RootElement;
        int port = json.GetProperty("port").GetInt32();
        Assert.True(port > 0);
        Assert.Equal($"nbd://127.0.0.1:{port}/lab%20disk", json.GetProperty("uri").GetString());
        Assert.True(json.GetProperty("readOnly").GetBoolean());
        Assert.Equal(64L << 20, json.GetProperty("size").GetInt64());
        var info = ExternalTool.RunChecked("nbdinfo", "--size", json.GetProperty("uri").GetString()!);
        Assert.Equal((64L << 20).ToString(), info.Trim());
        // Read-only serving takes shared locks only: another reader opens the image meanwhile.
        Assert.Equal(0, (await CliRunner.RunAsync("info", image)).ExitCode);
        serve.Signal("INT");
        Assert.Equal(0, (await serve.WaitAsync()).ExitCode);
    }

    [Fact]
    public async Task Refusals_are_usage_errors_and_a_served_image_is_locked()
    {
        using var dir = new TempDirectory("nbd-proc");
        var image = dir.File("d.vhdx");
        DiskImage.Create(image, new DiskSnapshotEngine.Formats.ImageCreateOptions(8 << 20)).Dispose();
        var both = await CliRunner.RunAsync("serve", image, "--socket", dir.File("s"), "--port", "1");
        Assert.Equal(ExitCodes.Usage, both.ExitCode);
        Assert.Contains("--socket cannot be combined with --port or --bind", both.StdErr);

        using var serve = new ServeProcess(image, "--socket", dir.File("a.sock"));
        var second = await CliRunner.RunProcessAsync(null, "serve", image, "--socket", dir.File("b.sock"));
        Assert.Equal(ExitCodes.ForKind(ErrorKind.Locked), second.ExitCode);
        var sameSocket = await CliRunner.RunProcessAsync(null, "serve", image, "--read-only", "--socket", dir.File("a.sock"));
        Assert.NotEqual(0, sameSocket.ExitCode);
        Assert.False(File.Exists(dir.File("b.sock")));
    }

    /// <summary>
    /// A socket path whose folder does not exist (exit 8, as create names a missing folder) or that this user may not
    /// create files in (exit 15, as every verb that writes beside a file): named in words, not "Cannot assign
    /// requested address" or a bare "Permission denied" under the I/O exit code 7.
    /// </summary>
    [RootFact("runs dse serve as nobody through setpriv")]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public async Task A_socket_in_a_missing_or_unwritable_folder_is_refused_with_the_folder_named()
    {
        using var dir = new TempDirectory("nbd-socket-folder");
        File.SetUnixFileMode(dir.Path, (UnixFileMode)0x1ED); // 0755, root's
        var image = dir.File("d.vhdx");
        DiskImage.Create(image, new DiskSnapshotEngine.Formats.ImageCreateOptions(8 << 20)).Dispose();
        ExternalTool.RunChecked("chown", "65534:65534", image);

        string missing = dir.File("no-such-folder");
        var noFolder = await CliRunner.RunAsync("serve", image, "--socket", Path.Combine(missing, "s.sock"));
        Assert.True(noFolder.ExitCode == ExitCodes.ForKind(ErrorKind.FileNotFound), noFolder.ToString());
        Assert.Contains($"cannot listen on the unix socket: its folder {missing} does not exist", noFolder.StdErr);

        var (code, _, stderr) = CliRunner.RunAsNobody(["serve", image, "--socket", dir.File("s.sock")]);
        Assert.True(code == ExitCodes.ForKind(ErrorKind.ReadOnly), $"exit {code}: {stderr}");
        Assert.Contains($"cannot listen on the unix socket: its folder {dir.Path} is not writable by this user", stderr);
        Assert.False(File.Exists(dir.File("s.sock")));
    }

    /// <summary>
    /// A client writes distinct ranges (every fourth with FUA) while the server is killed with SIGKILL. The image must
    /// pass <c>dse check</c>; every acknowledged write must read old or new (never a mix), and new when it had FUA; the one
    /// write in flight at the kill may be cut like a disk's, so each of its sectors reads old or new. The socket left
    /// behind is taken over by the next server.
    /// </summary>
    [Fact]
    public async Task Sigkill_during_client_writes_leaves_every_range_old_or_new()
    {
        const int Slot = 768 << 10, Slots = 160;
        using var dir = new TempDirectory("nbd-kill");
        var paths = NbdTestImages.Chain(dir.Path, "vhdx", 2, (long)Slot * Slots, 1 << 20, seed: 6);
        byte[] before;
        using (var c = DiskImage.Open(paths[^1], OpenOptions.ReadWrite))
        {
            // Part of every slot is already in the top layer: each write below goes partly in place, partly to sectors
            // the layer does not hold yet, the case that tears when the layer's map change is not committed with the write.
            for (int s = 0; s < Slots; s++) c.Write((long)s * Slot + 100_000 + s * 512, RandomData.Bytes(64 << 10, s));
            c.Flush();
            before = NbdTestImages.ReadAll(c);
        }
        string socket = dir.File("k.sock");
        var durable = new List<int>();
        var acknowledged = new List<int>();
        int sent = 0;
        using (var serve = new ServeProcess(paths[^1], "--socket", socket))
        {
            using var client = NbdTestClient.Unix(socket).Negotiate();
            var killer = Task.Run(async () =>
            {
                while (Volatile.Read(ref sent) < 40) await Task.Delay(5);
                serve.Signal("KILL");
            });
            try
            {
                for (int s = 0; s < Slots; s++)
                {
                    Volatile.Write(ref sent, s);
                    // Slot sizes and offsets vary, so writes hit partial sectors, whole blocks and block boundaries.
                    int length = Slot - 8 - (s % 7) * 4096 - (s % 3);
                    bool fua = s % 4 == 0;
                    var (error, _) = client.Write((long)s * Slot + s % 5, NewContent(s, length), flags: (ushort)(fua ? 1 : 0));
                    Assert.Equal(0u, error);
                    acknowledged.Add(s);
                    if (fua) durable.Add(s);
                }
            }
            catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or EndOfStreamException) { }
            await killer;
            await serve.WaitAsync();
        }
        Assert.True(sent < Slots - 1, "the server was killed only after the client had finished");

        var check = await CliRunner.RunAsync("check", paths[^1]);
        Assert.True(check.ExitCode == 0, check.ToString());
        byte[] after;
        using (var c = DiskImage.Open(paths[^1])) after = NbdTestImages.ReadAll(c);
        for (int s = 0; s < Slots; s++)
        {
            int length = Slot - 8 - (s % 7) * 4096 - (s % 3);
            int offset = s * Slot + s % 5;
            var expectedNew = NewContent(s, length);
            bool isNew = after.AsSpan(offset, length).SequenceEqual(expectedNew);
            bool isOld = after.AsSpan(offset, length).SequenceEqual(before.AsSpan(offset, length));
            if (acknowledged.Contains(s)) Assert.True(isNew || isOld, $"slot {s} was acknowledged but is neither its old nor its new content");
            if (durable.Contains(s)) Assert.True(isNew, $"slot {s} was acknowledged with FUA but is lost");
            if (isNew || isOld) continue;
            Assert.Equal(sent, s); // only the write in flight may be cut
            for (int sector = offset / 512 * 512; sector < offset + length; sector += 512)
            {
                int from = Math.Max(sector, offset), to = Math.Min(sector + 512, offset + length);
                var now = after.AsSpan(from, to - from);
                Assert.True(now.SequenceEqual(before.AsSpan(from, to - from)) || now.SequenceEqual(expectedNew.AsSpan(from - offset, to - from)),
                    $"slot {s} (in flight at the kill): the sector at {sector} mixes old and new bytes");
            }
        }

        // The killed server left its socket: the next one replaces it.
        using var again = new ServeProcess(paths[^1], "--socket", socket, "--read-only");
        using (var c = NbdTestClient.Unix(socket).Negotiate())
            Assert.Equal(0u, c.Read(0, 4096).Error);
        again.Signal("TERM");
        Assert.Equal(0, (await again.WaitAsync()).ExitCode);
    }

    private static byte[] NewContent(int slot, int length) => RandomData.Bytes(length, 1000 + slot);
}
