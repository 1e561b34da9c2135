using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Cli;

/// <summary>
/// <c>dse export IMAGE -</c> into a pipe whose reader went away (<c>| head -c 1</c>): the write fails (EPIPE), so the
/// export stops with an I/O error (exit 7) instead of reading the rest of the disk into nowhere and exiting 0.
/// </summary>
public sealed class ExportPipeTests
{
    [Fact]
    public async Task Export_into_a_pipe_its_reader_closed_stops_with_exit_7()
    {
        using var dir = new TempDirectory("export-pipe");
        string image = dir.File("disk.img");
        DiskImage.Create(image, new ImageCreateOptions(256L << 20)).Dispose();
        using var p = CliRunner.Start("export", image, "-");
        p.StandardInput.Close();
        var stderr = p.StandardError.ReadToEndAsync();
        var first = new byte[1];
        await p.StandardOutput.BaseStream.ReadExactlyAsync(first);
        p.StandardOutput.Close();
        using var hang = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        await p.WaitForExitAsync(hang.Token);
        string error = await stderr;
        Assert.True(p.ExitCode == 7, $"exit {p.ExitCode}: {error}");
        Assert.Contains("cannot write the exported disk", error);
    }
}
