using DiskSnapshotEngine.Cli;
using DiskSnapshotEngine.Cli.Commands;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Cli;

/// <summary>
/// <c>dse info IMAGE</c> runs without the command-line parser (start-up time). Its output, errors and exit code must be
/// those of the parser's path, which any option takes: here <c>--quiet</c>, which changes nothing for info.
/// </summary>
public sealed class InfoPlainTests
{
    private static async Task AssertSameAsParsed(string image)
    {
        Assert.True(InfoCommand.IsPlain(["info", image]));
        var plain = await CliRunner.RunAsync("info", image);
        var parsed = await CliRunner.RunAsync("info", image, "--quiet");
        Assert.Equal(parsed.ExitCode, plain.ExitCode);
        Assert.Equal(parsed.StdOut, plain.StdOut);
        Assert.Equal(parsed.StdErr, plain.StdErr);
    }

    [Fact]
    public async Task Plain_info_shows_what_the_parsed_command_shows_for_bases_children_seals_and_errors()
    {
        using var dir = new TempDirectory("info-plain");
        string base_ = dir.File("base.vhdx"), child = dir.File("child.vdi"), orphan = dir.File("orphan.qcow2");
        await VerbScenarios.Ok("create", base_, "--size", "8M");
        await VerbScenarios.Ok("create", child, "--parent", base_); // seals the base
        await VerbScenarios.Ok("create", dir.File("gone.qcow2"), "--size", "8M");
        await VerbScenarios.Ok("create", orphan, "--parent", dir.File("gone.qcow2"));
        File.Delete(dir.File("gone.qcow2"));
        File.WriteAllBytes(dir.File("junk.vhdx"), new byte[4096]);

        var shown = await CliRunner.RunAsync("info", child);
        Assert.Equal(0, shown.ExitCode);
        Assert.Contains("parent:", shown.StdOut);
        Assert.Contains("sealed:       yes", (await CliRunner.RunAsync("info", base_)).StdOut);

        foreach (var image in new[] { base_, child, orphan, dir.File("junk.vhdx"), dir.File("missing.vhdx") })
            await AssertSameAsParsed(image);
    }

    /// <summary>As a process, stdout redirected: plain info writes through Utf8Stdout, the parsed one through Console.Out.</summary>
    [Fact]
    public async Task As_a_process_plain_info_writes_the_same_bytes_as_the_console()
    {
        using var dir = new TempDirectory("info-plain-process");
        string image = dir.File("déjà vu.vhdx"), missing = dir.File("missing.vhdx");
        await VerbScenarios.Ok("create", image, "--size", "8M");
        foreach (var path in new[] { image, missing })
        {
            var plain = await CliRunner.RunProcessAsync(null, "info", path);
            var parsed = await CliRunner.RunProcessAsync(null, "info", path, "--quiet");
            Assert.Equal(path == image ? 0 : ExitCodes.FileNotFound, plain.ExitCode);
            Assert.Equal(parsed.ExitCode, plain.ExitCode);
            Assert.Equal(parsed.StdOutBytes, plain.StdOutBytes);
            Assert.Equal(parsed.StdErr, plain.StdErr);
        }
    }

    [Theory]
    [InlineData("info", "--help")]
    [InlineData("info", "-U")]
    [InlineData("info", "@args.rsp")]
    [InlineData("info", "[diagram]")]
    [InlineData("info", "")]
    [InlineData("info", "a.vhdx", "--json")]
    [InlineData("map", "a.vhdx")]
    public void Anything_but_a_plain_image_name_goes_through_the_parser(params string[] args) =>
        Assert.False(InfoCommand.IsPlain(args));
}
