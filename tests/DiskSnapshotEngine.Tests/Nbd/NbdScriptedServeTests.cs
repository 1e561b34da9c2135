using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Nbd;

/// <summary>
/// <c>dse serve IMG &amp;</c> started from a script, where the non-interactive shell starts the job with SIGINT ignored:
/// <c>kill -INT</c> still stops it cleanly, as it stops qemu-nbd started the same way.
/// </summary>
public class NbdScriptedServeTests
{
    [RequiresToolFact("bash", "qemu-io")]
    public async Task Serve_backgrounded_by_a_script_stops_on_sigint_and_closes_the_image_cleanly()
    {
        using var dir = new TempDirectory("nbd-script");
        var image = dir.File("d.vhdx");
        await CliRunner.OkAsync("create", image, "--size", "64M");
        string socket = dir.File("d.sock"), stderr = dir.File("serve.err");
        // What a lab script does: start the server as a background job; the shell exits and leaves it running.
        // The shipped binary when DSE_AOT names it (its signal set-up is not the JIT host's), else dotnet dse.dll.
        var pidText = ExternalTool.RunChecked("bash", ["-c", "\"${@:4}\" serve \"$1\" --socket \"$2\" >/dev/null 2>\"$3\" & echo $!",
            "script", image, socket, stderr, .. CliRunner.ProcessCommand]);
        int pid = int.Parse(pidText.Trim(), System.Globalization.CultureInfo.InvariantCulture);
        try
        {
            WaitFor(() => File.Exists(socket), $"dse serve never listened: {File.ReadAllText(stderr)}");
            ExternalTool.RunChecked("qemu-io", "-f", "raw", "-c", "write -P 0x3c 1M 64k", $"nbd+unix:///?socket={socket}");
            Assert.True(LockProbe.IsHeld(image));

            ExternalTool.RunChecked("kill", "-INT", pid.ToString(System.Globalization.CultureInfo.InvariantCulture));
            WaitFor(() => !Directory.Exists($"/proc/{pid}") || IsZombie(pid), "dse serve ignored SIGINT");
        }
        finally
        {
            if (Directory.Exists($"/proc/{pid}") && !IsZombie(pid)) ExternalTool.Run("kill", "-KILL", pid.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }
        Assert.Contains("stopped serving; the image is flushed", File.ReadAllText(stderr));
        Assert.False(LockProbe.IsHeld(image), "the lock outlived the server");
        Assert.False(File.Exists(socket));
        // Closed cleanly: the VHDX log is empty (check warns otherwise), and the write is there.
        var check = await CliRunner.RunAsync("check", image);
        Assert.True(check.ExitCode == 0 && !check.StdOut.Contains("not closed cleanly", StringComparison.Ordinal), check.ToString());
        using var disk = DiskImage.Open(image);
        var got = new byte[64 << 10];
        disk.Read(1 << 20, got);
        Assert.All(got, b => Assert.Equal(0x3c, b));
    }

    [RequiresToolFact("bash")]
    public void A_script_starts_its_background_jobs_with_sigint_ignored()
    {
        // The premise of the test above: a job the shell starts the same way (sleep keeps what it inherits) ignores SIGINT.
        var pid = ExternalTool.RunChecked("bash", "-c", "sleep 60 >/dev/null 2>&1 & echo $!").Trim();
        try
        {
            var mask = File.ReadLines($"/proc/{pid}/status").Single(l => l.StartsWith("SigIgn:", StringComparison.Ordinal));
            Assert.True((Convert.ToUInt64(mask["SigIgn:".Length..].Trim(), 16) & 0b10) != 0, mask);
        }
        finally { ExternalTool.Run("kill", "-KILL", pid); }
    }

    private static bool IsZombie(int pid)
    {
        try { return File.ReadAllText($"/proc/{pid}/stat").Split(") ")[^1].StartsWith('Z'); }
        catch (IOException) { return false; }
    }

    private static void WaitFor(Func<bool> condition, string failure)
    {
        var deadline = DateTime.UtcNow.AddMinutes(1);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) throw new Xunit.Sdk.XunitException(failure);
            Thread.Sleep(50);
        }
    }
}
