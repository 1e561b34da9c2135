using DiskSnapshotEngine.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Cli;

/// <summary>Found walking issue 13 as a new user: an unknown option is the word the error names, not the image after it.</summary>
public class UnknownOptionTests
{
    [Theory]
    [InlineData("-v")]
    [InlineData("--bogus")]
    public async Task An_unknown_option_before_the_image_is_the_word_named(string option)
    {
        using var dir = new TempDirectory("usage");
        string image = dir.File("disk.img");
        await CliRunner.OkAsync("create", image, "--size", "1M");
        foreach (var args in new[] { new[] { "info", option, image }, ["check", option, image], ["info", option] })
        {
            var r = await CliRunner.RunAsync(args);
            Assert.True(r.ExitCode == ExitCodes.Usage, $"dse {string.Join(' ', args)}: {r}");
            string line = Assert.Single(r.StdErr.TrimEnd().Split('\n'));
            Assert.Contains($"'{option}'", line);
            Assert.DoesNotContain("'" + image + "'", line);
            Assert.DoesNotContain("disk.img'", line);
            if (option == "-v") Assert.Contains("--version", line);
        }
        // A lone '-' (stdin) and negative numbers are no options.
        var stdin = await CliRunner.RunWithStdinAsync(new byte[512], "write", image, "--offset", "0", "--input", "-");
        Assert.True(stdin.ExitCode == 0, stdin.ToString());
    }
}
