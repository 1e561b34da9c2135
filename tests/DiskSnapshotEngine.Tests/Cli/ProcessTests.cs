using DiskSnapshotEngine.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Cli;

/// <summary>dse as a real process: exit codes as the shell sees them, stdin and stdout as pipes, signals.</summary>
public class ProcessTests
{
    [Fact]
    public async Task Exit_codes_reach_the_shell()
    {
        using var dir = new TempDirectory("cli");
        var missing = await CliRunner.RunProcessAsync(null, "info", dir.File("missing.vhdx"));
        Assert.Equal(ExitCodes.FileNotFound, missing.ExitCode);
        Assert.Equal($"dse: error: {dir.File("missing.vhdx")}: the image path does not exist", missing.StdErr.TrimEnd());

        var badSize = await CliRunner.RunProcessAsync(null, "create", dir.File("a.img"), "--size", "ten");
        Assert.Equal(ExitCodes.Usage, badSize.ExitCode);

        ExternalTool.RunChecked("mkfifo", dir.File("fifo.img"));
        var fifo = await CliRunner.RunProcessAsync(null, "export", dir.File("fifo.img"), dir.File("out.raw"));
        Assert.Equal(ExitCodes.FileNotFound, fifo.ExitCode);
        Assert.Contains("FIFO", fifo.StdErr);

        var help = await CliRunner.RunProcessAsync(null, "--help");
        Assert.Equal(0, help.ExitCode);
    }

    [Theory]
    [InlineData("2>/dev/full", "info")]
    [InlineData("2>&-", "info")]
    [InlineData("2>/dev/full", "clone")]
    [InlineData("2>&-", "info --json")]
    public async Task An_error_with_stderr_full_or_closed_still_exits_with_its_code(string redirect, string verb)
    {
        // The runtime aborted (exit 134) when the error line itself could not be written.
        using var dir = new TempDirectory("cli");
        var args = verb.Split(' ').ToList();
        args.Insert(1, dir.File("missing.vhdx"));
        if (verb == "clone") args.Insert(2, dir.File("out.vhdx"));
        var psi = new System.Diagnostics.ProcessStartInfo("sh") { UseShellExecute = false };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add($"exec \"$0\" \"$@\" {redirect}");
        foreach (var a in CliRunner.ProcessCommand.Concat(args)) psi.ArgumentList.Add(a);
        using var process = System.Diagnostics.Process.Start(psi)!;
        await process.WaitForExitAsync();
        Assert.Equal(ExitCodes.FileNotFound, process.ExitCode);
        Assert.False(File.Exists(dir.File("out.vhdx")));
    }

    [Fact]
    public async Task Stdin_write_and_stdout_export_through_pipes()
    {
        using var dir = new TempDirectory("cli");
        string image = dir.File("d.img");
        Assert.Equal(0, (await CliRunner.RunProcessAsync(null, "create", image, "--size", "20M")).ExitCode);
        var data = RandomData.Bytes((9 << 20) + 77, 11);
        var w = await CliRunner.RunProcessAsync(data, "write", image, "--offset", "3333", "--input", "-");
        Assert.True(w.ExitCode == 0, w.ToString());
        var e = await CliRunner.RunProcessAsync(null, "export", image, "-");
        Assert.True(e.ExitCode == 0, e.StdErr);
        var model = new byte[20 << 20];
        data.CopyTo(model, 3333);
        Assert.Equal(model.Length, e.StdOutBytes.Length);
        Assert.Equal(ContentHash.Of(model), ContentHash.Of(e.StdOutBytes));
    }

    [Fact]
    public async Task Sigterm_stops_an_export_with_exit_143()
    {
        using var dir = new TempDirectory("cli");
        string image = dir.File("big.img");
        // Sparse, so the test costs no disk; exporting to a pipe writes 4 GiB of zeros, far more than we read.
        Assert.Equal(0, (await CliRunner.RunProcessAsync(null, "create", image, "--size", "4G")).ExitCode);
        using var p = CliRunner.Start("export", image, "-");
        p.StandardInput.Close();
        var stderr = p.StandardError.ReadToEndAsync();
        var buffer = new byte[1 << 20];
        var stdout = p.StandardOutput.BaseStream;
        await stdout.ReadExactlyAsync(buffer);
        ExternalTool.RunChecked("kill", "-TERM", p.Id.ToString());
        long rest = 0;
        int n;
        while ((n = await stdout.ReadAsync(buffer)) > 0) rest += n;
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(1));
        await p.WaitForExitAsync(timeout.Token);
        Assert.Equal(ExitCodes.Terminated, p.ExitCode);
        Assert.True(rest < (4L << 30) - (1 << 20), "the export ran to completion");
        Assert.Contains("terminated", await stderr);
    }

    [Fact]
    public async Task Sigint_stops_a_write_waiting_on_stdin_with_exit_130()
    {
        using var dir = new TempDirectory("cli");
        string image = dir.File("d.img");
        Assert.Equal(0, (await CliRunner.RunProcessAsync(null, "create", image, "--size", "16M")).ExitCode);
        using var p = CliRunner.Start("write", image, "--offset", "0", "--input", "-");
        var stderr = p.StandardError.ReadToEndAsync();
        // Some bytes, then stdin stays open: the write blocks on a read that only the signal can end.
        await p.StandardInput.BaseStream.WriteAsync(new byte[1000]);
        await p.StandardInput.BaseStream.FlushAsync();
        await Task.Delay(TimeSpan.FromSeconds(2));
        ExternalTool.RunChecked("kill", "-INT", p.Id.ToString());
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await p.WaitForExitAsync(timeout.Token);
        Assert.Equal(ExitCodes.Interrupted, p.ExitCode);
        Assert.Contains("interrupted", await stderr);
    }
}
