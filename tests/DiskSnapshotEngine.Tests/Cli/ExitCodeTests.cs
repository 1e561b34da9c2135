using DiskSnapshotEngine.Cli;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Cli;

public class ExitCodeTests
{
    [Fact]
    public void Every_error_kind_has_its_own_code_apart_from_the_reserved_ones()
    {
        var codes = Enum.GetValues<ErrorKind>().Select(k => (Kind: k, Code: ExitCodes.ForKind(k))).ToList();
        Assert.Equal(codes.Count, codes.Select(c => c.Code).Distinct().Count());
        int[] reserved = { ExitCodes.Ok, ExitCodes.ProblemsFound, ExitCodes.Usage, ExitCodes.Internal, ExitCodes.Terminated };
        Assert.All(codes, c => Assert.DoesNotContain(c.Code, reserved));
        Assert.All(codes, c => Assert.InRange(c.Code, 3, 255));
    }

    [Fact]
    public void Readme_documents_every_exit_code()
    {
        string readme = File.ReadAllText(Path.Combine(RepoRoot(), "README.md"));
        foreach (var kind in Enum.GetValues<ErrorKind>())
            Assert.Matches($@"\|\s*{ExitCodes.ForKind(kind)}\s*\|\s*`?{kind}`?", readme);
    }

    [Fact]
    public void A_disk_image_error_is_one_line_on_stderr_with_its_kind_code()
    {
        var err = new StringWriter();
        var host = Host(err);
        int code = CliApp.Report(new DiskImageException(ErrorKind.CorruptImage, "bad checksum", "/x/a.vhdx", "header", 65536), host, verbose: false, signalExitCode: null);
        Assert.Equal(ExitCodes.CorruptImage, code);
        Assert.Equal("dse: error: /x/a.vhdx: header at offset 65536 (0x10000): bad checksum" + Environment.NewLine, err.ToString());
    }

    [Fact]
    public void An_unexpected_exception_is_an_internal_error_with_the_stack_only_when_verbose()
    {
        Exception thrown;
        try { throw new InvalidOperationException("boom\nsecond line"); }
        catch (InvalidOperationException e) { thrown = e; }

        var quiet = new StringWriter();
        Assert.Equal(ExitCodes.Internal, CliApp.Report(thrown, Host(quiet), verbose: false, signalExitCode: null));
        Assert.Single(quiet.ToString().TrimEnd().Split('\n'));
        Assert.Contains("internal error: InvalidOperationException: boom second line", quiet.ToString());
        Assert.DoesNotContain(nameof(An_unexpected_exception_is_an_internal_error_with_the_stack_only_when_verbose), quiet.ToString());

        var verbose = new StringWriter();
        Assert.Equal(ExitCodes.Internal, CliApp.Report(thrown, Host(verbose), verbose: true, signalExitCode: null));
        Assert.Contains(nameof(An_unexpected_exception_is_an_internal_error_with_the_stack_only_when_verbose), verbose.ToString());
    }

    [Fact]
    public void Cancellation_after_a_signal_exits_with_the_signal_code()
    {
        Assert.Equal(143, CliApp.Report(new OperationCanceledException(), Host(new StringWriter()), false, ExitCodes.Terminated));
        Assert.Equal(130, CliApp.Report(new OperationCanceledException(), Host(new StringWriter()), false, ExitCodes.Interrupted));
        Assert.Equal(130, CliApp.Report(new DiskImageException(ErrorKind.Cancelled, "stopped"), Host(new StringWriter()), false, null));
    }

    [Fact]
    public async Task Usage_errors_exit_2()
    {
        using var dir = new TempDirectory("cli");
        foreach (var args in new[]
        {
            new[] { "create", dir.File("a.img"), "--size", "12Q" },
            new[] { "create", dir.File("a.img") },
            new[] { "create", dir.File("a.img"), "--size", "1M", "--parent", dir.File("p.img") },
            new[] { "create", dir.File("a.img"), "--size", "1M", "--type", "thin" },
            new[] { "no-such-verb" },
            Array.Empty<string>(),
            new[] { "write", dir.File("a.img"), "--offset", "1x", "--input", dir.File("in") },
            new[] { "info" },
        })
        {
            var r = await CliRunner.RunAsync(args);
            Assert.True(r.ExitCode == ExitCodes.Usage, $"{string.Join(' ', args)}: {r}");
            Assert.StartsWith("dse: error: ", r.StdErr);
            Assert.False(File.Exists(dir.File("a.img")));
        }
    }

    [Fact]
    public async Task Missing_file_directory_and_fifo_are_file_not_found()
    {
        using var dir = new TempDirectory("cli");
        var fifo = dir.File("pipe.img");
        ExternalTool.RunChecked("mkfifo", fifo);
        foreach (var path in new[] { dir.File("missing.img"), dir.Path, fifo })
        {
            var info = CliRunner.RunAsync("info", path);
            var r = await info.WaitAsync(TimeSpan.FromSeconds(30));
            Assert.True(r.ExitCode == ExitCodes.FileNotFound, r.ToString());
            Assert.Contains(Path.GetFullPath(path).TrimEnd('/'), r.StdErr);
            Assert.Single(r.StdErr.TrimEnd().Split('\n'));
        }
    }

    private static CliHost Host(TextWriter err) => new()
    {
        Out = new StringWriter(),
        Error = err,
        OpenStdin = () => Stream.Null,
        OpenStdout = () => Stream.Null,
    };

    internal static string RepoRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "DiskSnapshotEngine.sln"))) return d.FullName;
        throw new InvalidOperationException("repository root not found");
    }
}
