using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;
using static DiskSnapshotEngine.Tests.Formats.Qcow2.Qcow2TestKit;

namespace DiskSnapshotEngine.Tests.Formats.Qcow2;

/// <summary>
/// A qcow2 child whose backing file is a differencing VHD, VHDX or VDI: dse reads the whole chain, QEMU does not (it
/// follows only qcow2 backing files; its vpc driver reads a differencing VHD as a dynamic one, without its parent and
/// without an error). The verbs that make such a child say so, since the file's purpose is to be run by QEMU.
/// </summary>
public sealed class Qcow2OverDifferencingTests
{
    [RequiresToolFact("qemu-img")]
    public async Task A_qcow2_child_of_a_differencing_vhd_is_made_with_a_warning_that_qemu_misreads_it()
    {
        using var dir = new TempDirectory("qcow2-over-diff");
        string baseVhd = dir.File("base.vhd"), mid = dir.File("mid.vhd"), data = dir.File("d.bin");
        await CliRunner.OkAsync("create", baseVhd, "--size", "8M");
        File.WriteAllBytes(data, RandomData.Bytes(1 << 20, seed: 7));
        await CliRunner.OkAsync("write", baseVhd, "--offset", "0", "--input", data);
        await CliRunner.OkAsync("create", mid, "--parent", baseVhd);

        // The fact the warning is about: QEMU runs this chain without the base's data, and says nothing.
        var plain = await CliRunner.OkAsync("create", dir.File("top.qcow2"), "--parent", mid);
        await CliRunner.OkAsync("export", dir.File("top.qcow2"), dir.File("dse.raw"));
        QemuImg("convert", "-f", "qcow2", "-O", "raw", dir.File("top.qcow2"), dir.File("qemu.raw"));
        Assert.NotEqual(ContentHash.OfFile(dir.File("dse.raw")), ContentHash.OfFile(dir.File("qemu.raw")));

        Assert.Contains($"QEMU cannot run {dir.File("top.qcow2")} by itself", plain.StdErr);
        Assert.Contains($"{mid} is a differencing VHD", plain.StdErr);
        Assert.Contains("dse serve", plain.StdErr);

        // The advice works as written: a flat qcow2 base under the child, which QEMU then reads as dse does.
        var advice = System.Text.RegularExpressions.Regex.Match(plain.StdErr, @"\(dse clone (\S+) (\S+), then dse rebase (\S+) --parent (\S+)\)");
        Assert.True(advice.Success, plain.StdErr);
        await CliRunner.OkAsync("clone", advice.Groups[1].Value, advice.Groups[2].Value);
        var rebased = await CliRunner.OkAsync("rebase", advice.Groups[3].Value, "--parent", advice.Groups[4].Value);
        Assert.DoesNotContain("QEMU cannot run", rebased.StdErr);
        QemuImg("convert", "-f", "qcow2", "-O", "raw", dir.File("top.qcow2"), dir.File("qemu.raw"));
        Assert.Equal(ContentHash.OfFile(dir.File("dse.raw")), ContentHash.OfFile(dir.File("qemu.raw")));
        // rebase warns as create --parent does: back over the differencing VHD.
        var back = await CliRunner.OkAsync("rebase", dir.File("top.qcow2"), "--parent", mid);
        Assert.Contains($"QEMU cannot run {dir.File("top.qcow2")} by itself: {mid} is a differencing VHD", back.StdErr);
        var linked = await CliRunner.OkAsync("clone", "--linked", mid, dir.File("linked.qcow2"));
        Assert.Contains($"QEMU cannot run {dir.File("linked.qcow2")} by itself", linked.StdErr);

        // One qcow2 layer between changes nothing: QEMU still reaches the differencing VHD.
        var deeper = await CliRunner.OkAsync("create", dir.File("deeper.qcow2"), "--parent", dir.File("top.qcow2"));
        Assert.Contains($"{mid} is a differencing VHD", deeper.StdErr);

        // A qcow2 over a base VHD, which QEMU reads whole, gets no such warning.
        var overBase = await CliRunner.OkAsync("create", dir.File("ok.qcow2"), "--parent", baseVhd);
        Assert.DoesNotContain("QEMU cannot run", overBase.StdErr);
    }

    [RequiresToolFact("qemu-img")]
    public async Task A_qcow2_child_of_a_differencing_vhdx_or_vdi_is_made_with_the_warning_that_qemu_refuses_it()
    {
        using var dir = new TempDirectory("qcow2-over-diff");
        foreach (string ext in new[] { "vhdx", "vdi" })
        {
            string baseImage = dir.File($"base.{ext}"), mid = dir.File($"mid.{ext}"), top = dir.File($"top-{ext}.qcow2");
            await CliRunner.OkAsync("create", baseImage, "--size", "8M");
            await CliRunner.OkAsync("create", mid, "--parent", baseImage);
            var r = await CliRunner.OkAsync("create", top, "--parent", mid);
            Assert.Contains($"{mid} is a differencing {ext.ToUpperInvariant()}", r.StdErr);
            Assert.Contains("QEMU refuses to open it", r.StdErr);
            Assert.NotEqual(0, ExternalTool.Run("qemu-img", "info", "--backing-chain", top).ExitCode);
        }
    }

    [Fact]
    public void The_warning_stays_silent_and_throws_nothing_on_a_path_it_cannot_open()
    {
        // The warning runs after the verb succeeded: a link loop (IOException) or a path that is a folder (.NET's
        // UnauthorizedAccessException, which root also gets) must never turn into the verb's failure.
        using var dir = new TempDirectory("qcow2-over-diff");
        File.CreateSymbolicLink(dir.File("a.qcow2"), dir.File("b.qcow2"));
        File.CreateSymbolicLink(dir.File("b.qcow2"), dir.File("a.qcow2"));
        Directory.CreateDirectory(dir.File("folder.qcow2"));
        var error = new StringWriter();
        var host = new DiskSnapshotEngine.Cli.CliHost
        {
            Out = TextWriter.Null, Error = error, OpenStdin = () => Stream.Null, OpenStdout = () => Stream.Null,
        };
        var context = new DiskSnapshotEngine.Cli.CliContext(host, json: false, quiet: false, verbose: false, CancellationToken.None);
        foreach (string path in new[] { dir.File("a.qcow2"), dir.File("folder.qcow2") })
            Assert.Null(Record.Exception(() => DiskSnapshotEngine.Cli.QemuBackingWarning.WarnIfQemuCannotFollow(context, path)));
        Assert.Equal("", error.ToString());
    }
}
