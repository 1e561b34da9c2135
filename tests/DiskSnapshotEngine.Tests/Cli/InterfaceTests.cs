using System.Text.Json;
using DiskSnapshotEngine.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;
using static DiskSnapshotEngine.Tests.Cli.VerbScenarios;

namespace DiskSnapshotEngine.Tests.Cli;

/// <summary>
/// The command line as one interface (issue 13): info's facts once each, sizes as users type them, formats named,
/// progress only on a terminal's stderr, one error line.
/// </summary>
public class InterfaceTests
{
    private static Dictionary<string, string> Lines(string text, out int valueColumn)
    {
        var lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var columns = lines.Where(l => l[(l.IndexOf(':') + 1)..].Trim().Length > 0)
            .Select(l => l.IndexOf(':') + 1 + l[(l.IndexOf(':') + 1)..].TakeWhile(c => c == ' ').Count()).Distinct().ToList();
        valueColumn = Assert.Single(columns);
        var names = lines.Select(l => l[..l.IndexOf(':')]).ToList();
        Assert.True(names.Count == names.Distinct().Count(), $"a fact is shown twice:\n{text}");
        return lines.ToDictionary(l => l[..l.IndexOf(':')], l => l[(l.IndexOf(':') + 1)..].Trim());
    }

    [RequiresToolTheory("qemu-img")]
    [InlineData("vhdx", "vhdx")]
    [InlineData("vdi", "vdi")]
    [InlineData("qcow2", "qcow2")]
    [InlineData("vhd", "vpc")]
    [InlineData("img", "raw")]
    public async Task Info_shows_each_fact_once_aligned_with_the_allocated_size(string ext, string qemuFormat)
    {
        using var dir = new TempDirectory("info");
        string image = dir.File("disk." + ext);
        await Ok("create", image, "--size", "64M");
        File.WriteAllBytes(dir.File("data.bin"), RandomData.Bytes(3 << 20, 5));
        await Ok("write", image, "--offset", "8M", "--input", dir.File("data.bin"));

        var facts = Lines((await Ok("info", image)).StdOut, out _);
        Assert.Equal(Path.GetFullPath(image), facts["image"]);
        Assert.StartsWith("64 MiB", facts["virtual size"]);
        Assert.True(facts.Count <= 11, $"{facts.Count} lines");
        // Format-specific fields only with --verbose.
        var verbose = Lines((await Ok("info", image, "--verbose")).StdOut, out _);
        Assert.True(verbose.Count >= facts.Count);
        Assert.All(verbose.Keys.Except(facts.Keys), k => Assert.True(k is "version" or "minimum size" || k.StartsWith(ext == "img" ? "raw" : ext, StringComparison.Ordinal) || k.StartsWith("parent", StringComparison.Ordinal), k));

        // The allocated size is what qemu-img calls the disk size.
        using var q = JsonDocument.Parse(ExternalTool.RunChecked("qemu-img", "info", "-f", qemuFormat, "--output=json", image));
        long actual = q.RootElement.GetProperty("actual-size").GetInt64();
        using var ours = JsonDocument.Parse((await Ok("info", image, "--json")).StdOut);
        Assert.Equal(actual, ours.RootElement.GetProperty("allocatedSize").GetInt64());
        Assert.Contains($"({actual} bytes)", facts["disk size"]);
    }

    [Fact]
    public async Task Info_of_a_vdi_child_names_its_parents_path_and_says_when_it_is_not_found()
    {
        using var dir = new TempDirectory("info");
        await Ok("create", dir.File("base.vdi"), "--size", "16M");
        await Ok("create", dir.File("child.vdi"), "--parent", dir.File("base.vdi"));
        var facts = Lines((await Ok("info", dir.File("child.vdi"))).StdOut, out _);
        Assert.Equal(dir.File("base.vdi"), facts["parent"]);
        using (var doc = JsonDocument.Parse((await Ok("info", dir.File("child.vdi"), "--json")).StdOut))
            Assert.Equal(dir.File("base.vdi"), doc.RootElement.GetProperty("parent").GetProperty("image").GetString());

        File.Move(dir.File("base.vdi"), dir.File("moved.vdi.bak"));
        facts = Lines((await Ok("info", dir.File("child.vdi"))).StdOut, out _);
        Assert.StartsWith("not found", facts["parent"]);
    }

    /// <summary>A parent path that names a directory (or a device) is a parent not found for info, which still shows the image.</summary>
    [Fact]
    public async Task Info_of_a_child_whose_parent_path_is_a_directory_shows_the_image()
    {
        using var dir = new TempDirectory("info");
        await Ok("create", dir.File("base.qcow2"), "--size", "16M");
        await Ok("create", dir.File("child.qcow2"), "--parent", dir.File("base.qcow2"));
        File.Delete(dir.File("base.qcow2"));
        Directory.CreateDirectory(dir.File("base.qcow2"));
        var facts = Lines((await Ok("info", dir.File("child.qcow2"))).StdOut, out _);
        Assert.StartsWith("not found", facts["parent"]);
        var chain = await CliRunner.RunAsync("export", dir.File("child.qcow2"), "-");
        Assert.True(chain.ExitCode == 8, chain.ToString());
    }

    [Fact]
    public async Task Vhdx_info_lists_no_candidate_path_twice()
    {
        using var dir = new TempDirectory("info");
        await Ok("create", dir.File("base.vhdx"), "--size", "16M");
        await Ok("create", dir.File("child.vhdx"), "--parent", dir.File("base.vhdx"));
        using var doc = JsonDocument.Parse((await Ok("info", dir.File("child.vhdx"), "--json")).StdOut);
        var paths = doc.RootElement.GetProperty("parent").GetProperty("candidatePaths").EnumerateArray().Select(e => e.GetString()).ToList();
        Assert.NotEmpty(paths);
        Assert.Equal(paths.Distinct().Count(), paths.Count);
        Assert.Equal(dir.File("base.vhdx"), doc.RootElement.GetProperty("parent").GetProperty("image").GetString());
    }

    [RequiresToolTheory("qemu-img")]
    [InlineData("vhdx", "vhdx")]
    [InlineData("vdi", "vdi")]
    [InlineData("img", "raw")]
    public async Task Sizes_are_taken_as_qemu_img_and_powershell_users_type_them(string ext, string qemuFormat)
    {
        using var dir = new TempDirectory("size");
        foreach (var (text, bytes) in new[] { ("1GB", 1L << 30), ("1.5G", 3L << 29), ("512MB", 512L << 20), ("1TiB", 1L << 40) })
        {
            string image = dir.File($"{text.Replace('.', '_')}.{ext}");
            await Ok("create", image, "--size", text);
            using var q = JsonDocument.Parse(ExternalTool.RunChecked("qemu-img", "info", "-f", qemuFormat, "--output=json", image));
            Assert.Equal(bytes, q.RootElement.GetProperty("virtual-size").GetInt64());
            File.Delete(image);
        }
        var bad = await CliRunner.RunAsync("create", dir.File("bad." + ext), "--size", "1,5G");
        Assert.Equal(ExitCodes.Usage, bad.ExitCode);
        Assert.Contains("10GB, 1.5G, 512MB, 1TiB", bad.StdErr);
        Assert.False(File.Exists(dir.File("bad." + ext)));
    }

    [RequiresToolTheory("qemu-img")]
    [InlineData("vmdk", "a VMDK image")]
    [InlineData("qed", "a QED image")]
    public async Task A_format_dse_does_not_read_is_named_with_exit_5(string qemuFormat, string named)
    {
        using var dir = new TempDirectory("fmt");
        File.WriteAllBytes(dir.File("data.bin"), new byte[4096]);
        // Under a raw name too: a VMDK called .img is no raw disk.
        foreach (var name in new[] { $"disk.{qemuFormat}", "disk.img" })
        {
            string path = dir.File(name);
            ExternalTool.RunChecked("qemu-img", "create", "-f", qemuFormat, path, "16M");
            byte[] before = File.ReadAllBytes(path);
            foreach (var verb in new[] { "info", "check", "write" })
            {
                var r = verb == "write"
                    ? await CliRunner.RunAsync("write", path, "--offset", "0", "--input", dir.File("data.bin"))
                    : await CliRunner.RunAsync(verb, path);
                Assert.True(r.ExitCode == ExitCodes.Unsupported, $"{verb} {name}: {r}");
                Assert.Contains(named, r.StdErr);
                Assert.DoesNotContain(".img", r.StdErr.Replace(path, ""));
                Assert.Single(r.StdErr.TrimEnd().Split('\n'));
            }
            Assert.Equal(before, File.ReadAllBytes(path));
            File.Delete(path);
        }
    }

    [Fact]
    public async Task An_iso_is_named_and_an_unknown_file_gets_no_rename_hint()
    {
        using var dir = new TempDirectory("fmt");
        var iso = new byte[0x9000];
        "CD001"u8.CopyTo(iso.AsSpan(0x8001));
        File.WriteAllBytes(dir.File("cd.iso"), iso);
        var r = await CliRunner.RunAsync("info", dir.File("cd.iso"));
        Assert.Equal(ExitCodes.Unsupported, r.ExitCode);
        Assert.Contains("ISO 9660", r.StdErr);

        File.WriteAllBytes(dir.File("notes.txt"), new byte[4096]);
        var unknown = await CliRunner.RunAsync("info", dir.File("notes.txt"));
        Assert.Equal(ExitCodes.InvalidFormat, unknown.ExitCode);
        Assert.DoesNotContain("name raw images", unknown.StdErr);
    }

    [RequiresToolTheory("qemu-img")]
    [InlineData("vhdx", "vhdx")]
    [InlineData("vdi", "vdi")]
    [InlineData("raw", "raw")]
    public async Task Create_and_clone_take_format_for_a_path_without_a_known_extension(string format, string qemuFormat)
    {
        using var dir = new TempDirectory("fmt");
        var none = await CliRunner.RunAsync("create", dir.File("disk.bin2"), "--size", "16M");
        Assert.Equal(ExitCodes.InvalidArgument, none.ExitCode);
        Assert.Contains("--format", none.StdErr);
        await Ok("create", dir.File("disk.bin2"), "--size", "16M", "--format", format);
        using var q = JsonDocument.Parse(ExternalTool.RunChecked("qemu-img", "info", "--output=json", "-f", qemuFormat, dir.File("disk.bin2")));
        Assert.Equal(16L << 20, q.RootElement.GetProperty("virtual-size").GetInt64());
        // A raw disk is recognised by its extension only; the others by their signature, whatever the name.
        if (format != "raw") Assert.Contains($"\"format\": \"{format}\"", (await Ok("info", dir.File("disk.bin2"), "--json")).StdOut);
    }

    [Theory]
    [InlineData("vhdx")]
    [InlineData("vdi")]
    public async Task Export_under_an_image_extension_is_refused_with_the_hint_to_clone(string ext)
    {
        using var dir = new TempDirectory("fmt");
        await Ok("create", dir.File("a." + ext), "--size", "16M");
        foreach (var target in new[] { "out.vhdx", "out.vdi", "out.qcow2", "out.vhd" })
        {
            var r = await CliRunner.RunAsync("export", dir.File("a." + ext), dir.File(target));
            Assert.Equal(ExitCodes.InvalidArgument, r.ExitCode);
            Assert.Contains("dse clone", r.StdErr);
            Assert.DoesNotContain("after removing", r.StdErr);
            Assert.False(File.Exists(dir.File(target)));
        }
        await Ok("export", dir.File("a." + ext), dir.File("out.img"));
    }

    /// <summary>
    /// Over an existing file (--force given) the hint does not suggest a clone onto it, which clone refuses (exit 16):
    /// it says to remove the file first or name a new one, and the file is unchanged.
    /// </summary>
    [Fact]
    public async Task Export_under_an_image_extension_over_an_existing_file_hints_a_clone_that_would_run()
    {
        using var dir = new TempDirectory("fmt-exists");
        string image = dir.File("a.vhdx"), taken = dir.File("taken.vhdx");
        await Ok("create", image, "--size", "16M");
        await Ok("create", taken, "--size", "8M");
        byte[] before = File.ReadAllBytes(taken);

        var r = await CliRunner.RunAsync("export", image, taken, "--force");
        Assert.True(r.ExitCode == ExitCodes.InvalidArgument, r.ToString());
        Assert.Contains($"dse clone {image} {taken} after removing {taken} (clone does not replace a file), or name a new file", r.StdErr);
        Assert.Equal(before, File.ReadAllBytes(taken));
        // What the hint warns of: clone onto the existing file is refused.
        Assert.Equal(ExitCodes.AlreadyExists, (await CliRunner.RunAsync("clone", image, taken)).ExitCode);
    }

    [Fact]
    public async Task Clone_warns_when_the_format_and_the_extension_disagree()
    {
        using var dir = new TempDirectory("fmt");
        await Ok("create", dir.File("x.vdi"), "--size", "16M");
        var r = await Ok("clone", "--format", "vhdx", dir.File("x.vdi"), dir.File("out.vhd"));
        Assert.Contains("warning", r.StdErr);
        Assert.Contains(".vhd names vhd", r.StdErr);
        var same = await Ok("clone", "--format", "vhdx", dir.File("x.vdi"), dir.File("out.vhdx"));
        Assert.DoesNotContain("warning", same.StdErr);
    }

    [Theory]
    [InlineData("vhdx")]
    [InlineData("vdi")]
    [InlineData("img")]
    public async Task Progress_goes_to_stderr_only_on_a_terminal_and_quiet_silences_it(string ext)
    {
        using var dir = new TempDirectory("progress");
        await Ok("create", dir.File("a." + ext), "--size", "16M");
        File.WriteAllBytes(dir.File("data.bin"), RandomData.Bytes(9 << 20, 3));
        var args = new[] { "write", dir.File("a." + ext), "--offset", "0", "--input", dir.File("data.bin") };

        var terminal = await CliRunner.RunWithTerminalStderrAsync(args);
        Assert.Equal(0, terminal.ExitCode);
        Assert.Contains("write", terminal.StdErr);
        Assert.Contains("100%", terminal.StdErr);
        Assert.DoesNotContain("%", terminal.StdOut);

        var quiet = await CliRunner.RunWithTerminalStderrAsync([.. args, "--quiet"]);
        Assert.Equal(0, quiet.ExitCode);
        Assert.Equal("", quiet.StdErr);

        var piped = await CliRunner.RunAsync(args);
        Assert.Equal("", piped.StdErr);
        foreach (var other in new[] { new[] { "check", dir.File("a." + ext) }, new[] { "compare", dir.File("a." + ext), dir.File("a." + ext) } })
        {
            var shown = await CliRunner.RunWithTerminalStderrAsync(other);
            Assert.Equal(0, shown.ExitCode);
            Assert.Contains("100%", shown.StdErr);
            Assert.Equal("", (await CliRunner.RunWithTerminalStderrAsync([.. other, "-q"])).StdErr);
        }
    }

    [Fact]
    public async Task An_unknown_verb_is_one_error_line()
    {
        var r = await CliRunner.RunAsync("frobnicate");
        Assert.Equal(ExitCodes.Usage, r.ExitCode);
        string line = Assert.Single(r.StdErr.TrimEnd().Split('\n'));
        Assert.Contains("frobnicate", line);
        Assert.Contains("--help", line);
    }

    [Fact]
    public async Task Version_is_spelled_out_and_v_is_not_an_option()
    {
        var version = await CliRunner.RunAsync("--version");
        Assert.Equal(0, version.ExitCode);
        Assert.Matches(@"^\d+\.\d+", version.StdOut);
        // With --json, the same version as one JSON object (issue 13: every answer is JSON with --json).
        foreach (var args in new[] { new[] { "--version", "--json" }, ["--json", "--version"] })
        {
            var json = await CliRunner.RunAsync(args);
            Assert.Equal(0, json.ExitCode);
            using var doc = System.Text.Json.JsonDocument.Parse(json.StdOut);
            // In process the parser's text names the test host's version; the JSON names the CLI assembly's, as dse does.
            Assert.Matches(@"^\d+\.\d+\.\d+", doc.RootElement.GetProperty("version").GetString());
        }
        Assert.Equal(ExitCodes.Usage, (await CliRunner.RunAsync("-v")).ExitCode);
        Assert.Equal(ExitCodes.Usage, (await CliRunner.RunAsync("info", "-v", "x.img")).ExitCode);
    }

    [RequiresMountFact]
    public async Task A_read_only_file_system_is_exit_15()
    {
        using var fs = SmallFileSystem.TryMount(64) ?? throw new InvalidOperationException("tmpfs mount failed as root");
        foreach (var ext in new[] { "vhdx", "vdi", "img" })
            await Ok("create", fs.File("d." + ext), "--size", "4M");
        File.WriteAllBytes(Path.Combine(Path.GetTempPath(), "dse-ro-input.bin"), new byte[4096]);
        fs.RemountReadOnly();
        try
        {
            foreach (var ext in new[] { "vhdx", "vdi", "img" })
            {
                var write = await CliRunner.RunAsync("write", fs.File("d." + ext), "--offset", "0", "--input", Path.Combine(Path.GetTempPath(), "dse-ro-input.bin"));
                Assert.True(write.ExitCode == ExitCodes.ReadOnly, $"{ext}: {write}");
                var create = await CliRunner.RunAsync("create", fs.File("new." + ext), "--size", "4M");
                Assert.True(create.ExitCode == ExitCodes.ReadOnly, $"{ext}: {create}");
                Assert.Contains("read-only", create.StdErr);
            }
        }
        finally
        {
            File.Delete(Path.Combine(Path.GetTempPath(), "dse-ro-input.bin"));
        }
    }
}
