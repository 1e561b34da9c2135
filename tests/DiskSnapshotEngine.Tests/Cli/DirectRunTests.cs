using System.Diagnostics;
using System.Text.RegularExpressions;
using DiskSnapshotEngine.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Cli;

/// <summary>
/// Plain command lines of clone, export, create, write and merge, and <c>--version</c>, run without the command-line
/// parser (DirectRun, start-up time). Each line runs twice on the same set-up in two folders, once as dse runs it and
/// once through the parser: exit code, stdout and stderr must be the same (the folder and fresh image ids aside), and
/// the line must (or must not) have taken the direct path.
/// </summary>
public sealed partial class DirectRunTests
{
    internal static byte[] Stdin { get; } = RandomData.Bytes(70_000, 7);

    // D/ stands for the folder of the run; every line is given relative to it.
    private static async Task AssertSame(bool direct, Func<Func<string, string>, Task> setUp, params string[] line)
    {
        using var a = new TempDirectory("direct");
        using var b = new TempDirectory("parsed");
        await setUp(a.File);
        await setUp(b.File);
        string[] In(TempDirectory dir) => line.Select(w => w.StartsWith("D/", StringComparison.Ordinal) ? dir.File(w[2..]) : w).ToArray();
        Assert.True(direct == DirectRun.Match(In(a)) is not null || CliApp.IsVersion(line),
            $"dse {string.Join(' ', line)} should {(direct ? "" : "not ")}run without the parser");
        var run = await CliRunner.RunWithStdinAsync(Stdin, In(a));
        var parsed = await CliRunner.RunParsedAsync(Stdin, In(b));
        // The folder as written, and as a VHDX's Windows-style parent locator entry writes it (verbose info).
        string Same(string text, TempDirectory dir) => Guid().Replace(text.Replace(dir.Path, "D", StringComparison.Ordinal)
            .Replace(dir.Path.Replace('/', '\\'), "D", StringComparison.Ordinal), "GUID");
        Assert.True(parsed.ExitCode == run.ExitCode, $"dse {string.Join(' ', line)}: direct {run}\nparsed {parsed}");
        Assert.Equal(Same(parsed.StdOut, b), Same(run.StdOut, a));
        Assert.Equal(Same(parsed.StdErr, b), Same(run.StdErr, a));
        Assert.Equal(parsed.StdOutBytes, run.StdOutBytes);
    }

    [GeneratedRegex("[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")]
    internal static partial Regex Guid();

    internal static Task Nothing(Func<string, string> _) => Task.CompletedTask;

    internal static async Task Image(Func<string, string> file)
    {
        await CliRunner.OkAsync("create", file("s.vhdx"), "--size", "8M");
        await File.WriteAllBytesAsync(file("in.bin"), RandomData.Bytes(100_000, 3));
        await CliRunner.OkAsync("write", file("s.vhdx"), "--offset", "1M", "--input", file("in.bin"));
        await File.WriteAllBytesAsync(file("taken.raw"), [1]);
    }

    internal static async Task Child(Func<string, string> file)
    {
        await Image(file);
        await CliRunner.OkAsync("create", file("c.vhdx"), "--parent", file("s.vhdx"));
        await CliRunner.OkAsync("write", file("c.vhdx"), "--offset", "0", "--input", file("in.bin"));
    }

    [Theory]
    [InlineData("--version", "--json")]
    [InlineData("--json", "--version")]
    public Task Version_json_is_the_parsers(params string[] line) => AssertSame(true, Nothing, line);

    /// <summary>
    /// The parser prints the entry assembly's informational version (in this test process, the test host's): dse's own as
    /// a process, which the direct path prints from the CLI assembly.
    /// </summary>
    [Fact]
    public async Task Version_is_the_informational_version_the_parser_prints_for_dse()
    {
        string version = typeof(CliApp).Assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyInformationalVersionAttribute), false)
            .Cast<System.Reflection.AssemblyInformationalVersionAttribute>().Single().InformationalVersion;
        Assert.Equal(version + "\n", (await CliRunner.RunAsync("--version")).StdOut.ReplaceLineEndings("\n"));
        string? entry = System.Reflection.Assembly.GetEntryAssembly()?.GetCustomAttributes(typeof(System.Reflection.AssemblyInformationalVersionAttribute), false)
            .Cast<System.Reflection.AssemblyInformationalVersionAttribute>().SingleOrDefault()?.InformationalVersion;
        if (entry is not null) Assert.Equal(entry + "\n", (await CliRunner.RunParsedAsync(null, "--version")).StdOut.ReplaceLineEndings("\n"));
        var process = await CliRunner.RunProcessAsync(null, "--version");
        Assert.Equal(0, process.ExitCode);
        Assert.Equal(version + "\n", process.StdOut.ReplaceLineEndings("\n"));
        Assert.Equal("", process.StdErr);
    }

    [Theory]
    [InlineData("create", "D/n.vhdx", "--size", "8M")]
    [InlineData("create", "D/n.vdi", "--size", "1.5M", "--json")]
    [InlineData("create", "--type", "fixed", "D/n.img", "--size", "1M", "-q")]
    [InlineData("create", "D/n.img", "--size", "4M", "--format", "qcow2", "--block-size", "64K", "--verbose")]
    [InlineData("create", "D/n.vhdx", "--size", "8M", "--logical-sector-size", "4096", "--quiet")]
    [InlineData("create", "D/n.txt", "--size", "8M")]
    [InlineData("create", "D/s.vhdx", "--size", "8M", "--json")]
    [InlineData("create", "D/none/n.vhdx", "--size", "8M")]
    [InlineData("clone", "D/s.vhdx", "D/o.vhdx")]
    [InlineData("clone", "D/s.vhdx", "D/o.qcow2", "--json", "--no-sync")]
    [InlineData("clone", "D/s.vhdx", "D/o.img", "--format", "vdi", "--type", "fixed")]
    [InlineData("clone", "D/s.vhdx", "D/o.vhdx", "--block-size", "1M", "--type", "dynamic")]
    [InlineData("clone", "D/s.vhdx", "D/taken.raw")]
    [InlineData("clone", "D/missing.vhdx", "D/o.vhdx", "--json")]
    [InlineData("clone", "D/s.vhdx", "D/o.unknown")]
    [InlineData("export", "D/s.vhdx", "D/o.raw")]
    [InlineData("export", "D/s.vhdx", "D/o.img", "--json", "--no-sync")]
    [InlineData("export", "D/s.vhdx", "-")]
    [InlineData("export", "D/s.vhdx", "D/taken.raw")]
    [InlineData("export", "D/s.vhdx", "D/taken.raw", "--force", "--sync")]
    [InlineData("export", "D/s.vhdx", "D/o.vhdx")]
    [InlineData("write", "D/s.vhdx", "--offset", "4K", "--input", "D/in.bin")]
    [InlineData("write", "D/s.vhdx", "--input", "-", "--offset", "0", "--json")]
    [InlineData("write", "D/s.vhdx", "--offset", "8M", "--input", "D/in.bin")]
    [InlineData("write", "D/s.vhdx", "--offset", "0", "--input", "D/missing.bin", "--json")]
    [InlineData("write", "D/s.vhdx", "--offset", "0", "--input", "D/in.bin", "--force")]
    [InlineData("merge", "D/s.vhdx")]
    [InlineData("merge", "D/s.vhdx", "--json")]
    public Task A_plain_line_runs_without_the_parser_with_the_parsers_result(params string[] line) => AssertSame(true, Image, line);

    [Theory]
    [InlineData("merge", "D/c.vhdx")]
    [InlineData("merge", "D/c.vhdx", "--force", "--json")]
    [InlineData("merge", "D/c.vhdx", "--into", "D/s.vhdx", "--force")]
    [InlineData("write", "D/s.vhdx", "--offset", "0", "--input", "D/in.bin")]
    [InlineData("write", "D/c.vhdx", "--offset", "0", "--input", "D/in.bin", "--json")]
    [InlineData("clone", "D/c.vhdx", "D/flat.vdi")]
    [InlineData("clone", "D/c.vhdx", "D/l.vhdx", "--linked")]
    [InlineData("clone", "--linked", "D/s.vhdx", "D/l.qcow2", "--format", "qcow2", "--json")]
    [InlineData("clone", "D/s.vhdx", "D/l.vhdx", "--linked", "--no-sync")]
    [InlineData("clone", "D/missing.vhdx", "D/l.vhdx", "--linked")]
    [InlineData("create", "D/l.vhdx", "--parent", "D/c.vhdx")]
    [InlineData("create", "D/l.vdi", "--parent", "D/s.vhdx", "--json")]
    [InlineData("create", "D/l.img", "--parent", "D/s.vhdx", "--format", "vhdx", "--verbose")]
    [InlineData("create", "D/c.vhdx", "--parent", "D/s.vhdx")]
    [InlineData("create", "D/l.vhdx", "--parent", "D/missing.vhdx")]
    [InlineData("create", "D/l.raw", "--parent", "D/s.vhdx")]
    [InlineData("export", "D/c.vhdx", "-")]
    public Task A_plain_line_on_a_chain_runs_without_the_parser_with_the_parsers_result(params string[] line) => AssertSame(true, Child, line);

    [Theory]
    [InlineData("clone", "D/s.vhdx", "D/o.vhdx", "--help")]
    [InlineData("clone", "D/s.vhdx", "-h")]
    [InlineData("clone", "D/s.vhdx")]
    [InlineData("clone", "D/s.vhdx", "D/o.vhdx", "D/p.vhdx")]
    [InlineData("clone", "D/s.vhdx", "D/o.vhdx", "--type", "bogus")]
    [InlineData("clone", "D/s.vhdx", "D/o.vhdx", "--format", "VHDX")]
    [InlineData("clone", "D/s.vhdx", "D/o.vhdx", "--block-size", "0")]
    [InlineData("clone", "D/s.vhdx", "D/o.vhdx", "--block-size", "1.5.2")]
    [InlineData("clone", "D/s.vhdx", "D/o.vhdx", "--format=vhdx")]
    [InlineData("clone", "D/s.vhdx", "D/o.vhdx", "--no-sync", "true")]
    [InlineData("clone", "D/s.vhdx", "D/o.vhdx", "--no-sync", "--no-sync")]
    [InlineData("clone", "D/s.vhdx", "D/o.vhdx", "-q", "--quiet")]
    [InlineData("clone", "D/s.vhdx", "D/o.vhdx", "--linked", "--type", "fixed")]
    [InlineData("clone", "D/s.vhdx", "D/o.vhdx", "--linked", "--type", "dynamic")]
    [InlineData("clone", "D/s.vhdx", "D/o.vhdx", "--linked", "--block-size", "1M")]
    [InlineData("create", "D/n.vhdx", "--parent", "D/s.vhdx", "--type", "dynamic")]
    [InlineData("create", "D/n.vhdx", "--parent", "D/s.vhdx", "--logical-sector-size", "512")]
    [InlineData("create", "D/n.vhd", "--parent", "D/s.vhdx", "--profile", "azure")]
    [InlineData("create", "D/n.vhdx", "--parent", "D/s.vhdx", "--format", "nope")]
    [InlineData("create", "D/n.vhdx", "--parent", "D/s.vhdx", "--block-size", "1M")]
    [InlineData("create", "D/n.vhdx", "--size", "8M", "--type", "bogus")]
    [InlineData("create", "D/n.vhdx", "--size", "8M", "--block-size", "0")]
    [InlineData("clone", "D/s.vhdx", "D/o.vhd", "--profile", "azure")]
    [InlineData("clone", "D/s.vhdx", "D/o.vhdx", "--search-path", "D/")]
    [InlineData("clone", "D/s.vhdx", "D/o.vhdx", "-v")]
    [InlineData("clone", "D/s.vhdx", "D/o.vhdx", "--")]
    [InlineData("clone", "@D/args.rsp", "D/o.vhdx")]
    [InlineData("clone", "D/s.vhdx", "-1")]
    [InlineData("clone", "D/s.vhdx", "")]
    [InlineData("create", "D/n.vhdx")]
    [InlineData("create", "D/n.vhdx", "--size", "0")]
    [InlineData("create", "D/n.vhdx", "--size", "8X")]
    [InlineData("create", "D/n.vhdx", "--size", "8M", "--logical-sector-size", "1024")]
    [InlineData("create", "D/n.vhdx", "--size", "8M", "--parent", "D/s.vhdx")]
    [InlineData("create", "D/n.vhdx", "--size")]
    [InlineData("create", "D/n.vhdx", "--size", "--json")]
    [InlineData("export", "D/s.vhdx", "D/o.raw", "-U")]
    [InlineData("export", "D/s.vhdx", "D/o.raw", "--vbox-registry", "D/none.xml")]
    [InlineData("write", "D/s.vhdx", "--offset", "0")]
    [InlineData("write", "D/s.vhdx", "--input", "D/in.bin")]
    [InlineData("write", "D/s.vhdx", "--offset", "-1", "--input", "D/in.bin")]
    [InlineData("merge", "D/s.vhdx", "--pull")]
    [InlineData("merge", "D/s.vhdx", "--into")]
    [InlineData("merge", "D/s.vhdx", "--force", "--force")]
    [InlineData("merge")]
    [InlineData("--version", "--verbose")]
    [InlineData("merge", "/?")]
    [InlineData("create", "/h", "--size", "1M", "--format", "raw")]
    [InlineData("export", "D/s.vhdx", "/h")]
    [InlineData("merge", "D/s.vhdx", "--into", "/?")]
    public Task Any_other_line_goes_through_the_parser(params string[] line) => AssertSame(false, Image, line);

    /// <summary>
    /// The result line cannot be written (stdout on a full device, or closed): as a process, where the direct path
    /// writes stdout itself (Utf8Stdout), the line fails as it does through the parser, with the console's error and
    /// exit 70 (the direct path exited 0, the result lost).
    /// </summary>
    [Theory]
    [InlineData(">/dev/full", "--json")]
    [InlineData(">&-", "-q")]
    public async Task A_result_that_cannot_be_written_fails_as_through_the_parser(string redirect, string flag)
    {
        using var dir = new TempDirectory("direct-stdout");
        await Image(dir.File);
        async Task<(int Exit, string Error)> Run(params string[] args)
        {
            var psi = new ProcessStartInfo("sh") { RedirectStandardError = true, UseShellExecute = false };
            psi.ArgumentList.Add("-c");
            psi.ArgumentList.Add($"exec \"$0\" \"$@\" {redirect}");
            foreach (var a in CliRunner.ProcessCommand.Concat(args)) psi.ArgumentList.Add(a);
            psi.Environment.Remove("DSE_DEBUG");
            psi.Environment["LC_ALL"] = "C.UTF-8"; // the direct path's own stdout writer needs a UTF-8 locale
            using var process = Process.Start(psi)!;
            string error = await process.StandardError.ReadToEndAsync();
            await process.WaitForExitAsync();
            return (process.ExitCode, error);
        }
        string[] line = ["clone", dir.File("s.vhdx"), dir.File("o1.vdi"), flag];
        Assert.NotNull(DirectRun.Match(line));
        var direct = await Run(line);
        var parsed = await Run("clone", dir.File("s.vhdx"), dir.File("o2.vdi"), flag, "--no-sync", "false");
        Assert.Equal(ExitCodes.Internal, parsed.Exit);
        Assert.Equal(parsed, direct);
    }
}
