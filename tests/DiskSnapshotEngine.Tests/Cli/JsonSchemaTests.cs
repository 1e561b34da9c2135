using System.Buffers.Binary;
using System.CommandLine;
using System.Text.Json;
using System.Text.RegularExpressions;
using DiskSnapshotEngine.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;
using static DiskSnapshotEngine.Tests.Cli.VerbScenarios;

namespace DiskSnapshotEngine.Tests.Cli;

/// <summary>
/// The one JSON schema of <c>--json</c> (README "JSON output"): every verb of the command catalog, including verbs
/// added later, is run with --json and its stdout and stderr checked for key style, value types and duplicates.
/// </summary>
public partial class JsonSchemaTests
{
    // Verbs that run until a signal or need a kernel feature; each is covered where it can run.
    private static readonly Dictionary<string, string> s_notRunHere = new()
    {
        ["mount"] = "needs nbdfuse and FUSE; NbdMountTests runs it",
    };

    [GeneratedRegex("^[a-z][a-zA-Z0-9]*$")]
    private static partial Regex CamelCase();

    // A number, a yes/no or true/false, or a number followed by text ("65536 (cluster_bits 16)", "512 bytes at 0"):
    // a fact that JSON types as a number or a boolean, with any further fact under a key of its own.
    [GeneratedRegex(@"^-?\d+$|^(true|false|yes|no)$|^-?\d+\s", RegexOptions.IgnoreCase)]
    private static partial Regex NumberOrBooleanText();

    [Theory]
    [InlineData("vhdx")]
    [InlineData("vdi")]
    public async Task Every_verb_answers_json_in_one_schema(string ext)
    {
        using var dir = new TempDirectory("json");
        var runs = await Scenario(dir, ext);
        foreach (var (verb, args) in runs)
        {
            var r = await CliRunner.RunAsync([.. args, "--json"]);
            Assert.True(r.ExitCode == 0, $"dse {string.Join(' ', args)} --json: {r}");
            CheckDocument(verb, r.StdOut);
            CheckStderr(verb, r.StdErr);
            CheckKeys(verb, args, r.StdOut);
        }

        var served = await ServeOnce(dir.File($"base.{ext}"));
        CheckDocument("serve", served.StdOut);
        CheckKeys("serve", [], served.StdOut);

        // Every verb of the catalog ran, so a verb added later without a line here fails this test.
        var ran = runs.Select(r => r.Verb).Append("serve").Concat(s_notRunHere.Keys).ToHashSet();
        var notRun = AllVerbs().Where(v => !ran.Contains(v)).ToList();
        Assert.True(notRun.Count == 0, $"verbs not run with --json here: {string.Join(", ", notRun)}");
    }

    /// <summary>
    /// Makes in <paramref name="dir"/> the images the lines need and returns a line of every verb (but serve and those in
    /// s_notRunHere), in order: a line may use what an earlier one made. Each runs with exit 0, with or without --json.
    /// </summary>
    internal static async Task<List<(string Verb, string[] Args)>> Scenario(TempDirectory dir, string ext)
    {
        string F(string name) => dir.File($"{name}.{ext}");
        File.WriteAllBytes(dir.File("data.bin"), RandomData.Bytes(300_000, 7));
        await Ok("create", F("chainbase"), "--size", "16M");
        await Ok("create", F("chaintop"), "--parent", F("chainbase"));
        await Ok("create", F("rebaseparent"), "--size", "16M");
        await Ok("clone", F("rebaseparent"), F("rebaseparent2"));
        await Ok("create", F("rebasechild"), "--parent", F("rebaseparent"));
        await Ok("create", F("disk"), "--size", "16M");
        await Ok("create", dir.File("hyperv.vhdx"), "--size", "16M"); // Hyper-V takes VHDX and VHD only

        // In order: each verb's arguments (a verb may use what an earlier one made).
        var runs = new List<(string Verb, string[] Args)>
        {
            ("create", ["create", F("base"), "--size", "16M"]),
            ("create", ["create", F("child"), "--parent", F("base")]),
            ("info", ["info", F("child")]),
            ("info", ["info", F("child"), "--chain"]),
            ("write", ["write", F("child"), "--offset", "1M", "--input", dir.File("data.bin")]),
            ("export", ["export", F("child"), dir.File("out.img")]),
            ("check", ["check", F("child")]),
            ("clone", ["clone", F("child"), F("flat")]),
            ("clone", ["clone", "--linked", F("base"), F("linked")]),
            ("compare", ["compare", F("child"), F("flat")]),
            ("map", ["map", F("child")]),
            ("compact", ["compact", F("child")]),
            ("measure", ["measure", F("child")]),
            ("reset", ["reset", F("linked")]),
            ("detach", ["detach", F("linked")]),
            ("create", ["create", F("resizable"), "--size", "16M"]),
            ("resize", ["resize", F("resizable"), "--size", "32M"]),
            ("set-identity", ["set-identity", F("resizable"), "--new"]),
            ("seal", ["seal", F("flat")]),
            ("unseal", ["unseal", F("chainbase")]), // create --parent sealed it; merging into it needs the user's word
            ("merge", ["merge", F("chaintop")]),
            ("rebase", ["rebase", F("rebasechild"), "--parent", F("rebaseparent2")]),
            ("snapshot create", ["snapshot", "create", F("disk"), "--name", "first"]),
            ("snapshot create", ["snapshot", "create", F("disk"), "--name", "second"]),
            ("snapshot list", ["snapshot", "list", F("disk")]),
            ("snapshot revert", ["snapshot", "revert", F("disk"), "--name", "first"]),
            ("rollback", ["rollback", F("disk")]),
            ("snapshot delete", ["snapshot", "delete", F("disk"), "--name", "second"]),
            ("snapshot repair", ["snapshot", "repair", F("disk")]),
            ("demo", ["demo", "--dir", dir.File("demo"), "--format", ext]),
            ("vm register virtualbox", ["vm", "register", "virtualbox", "--name", "t", "--disk", F("base"), "--dry-run"]),
            ("vm register virtualbox", ["vm", "register", "virtualbox", "--name", "t", "--disk", F("base"), "--folder", dir.File("vms")]),
            ("vm sync virtualbox", ["vm", "sync", "virtualbox", "--vm", dir.File("vms/t/t.vbox"), "--disk", F("base")]),
            ("vm register hyperv", ["vm", "register", "hyperv", "--name", "t", "--disk", dir.File("hyperv.vhdx"), "--dry-run"]),
            ("vm register libvirt", ["vm", "register", "libvirt", "--name", "t", "--disk", F("base"), "--dry-run"]),
            ("vm checkpoint hyperv", ["vm", "checkpoint", "hyperv", "--name", "t", "--dry-run"]),
        };
        return runs;
    }

    [Fact]
    public void Every_verb_of_the_catalog_has_the_json_option()
    {
        var root = CommandCatalog.BuildRoot();
        foreach (var verb in CommandCatalog.Leaves(root))
            Assert.True(verb.Options.Any(o => o.Name == "--json"), verb.Name);
    }

    [Theory]
    [InlineData("vhdx")]
    [InlineData("vdi")]
    [InlineData("img")]
    public async Task Errors_with_json_are_one_json_object_on_stderr(string ext)
    {
        using var dir = new TempDirectory("json");
        foreach (var (args, kind, exit) in new (string[], string, int)[]
        {
            (["info", dir.File("missing." + ext)], "fileNotFound", ExitCodes.FileNotFound),
            (["create", dir.File("x." + ext), "--size", "1.5.2G"], "usage", ExitCodes.Usage),
            (["frobnicate"], "usage", ExitCodes.Usage),
            (["snapshot", "revert", dir.File("missing." + ext), "--name", "a"], "fileNotFound", ExitCodes.FileNotFound),
        })
        {
            var r = await CliRunner.RunAsync([.. args, "--json"]);
            Assert.Equal(exit, r.ExitCode);
            Assert.Equal("", r.StdOut);
            string line = Assert.Single(r.StdErr.TrimEnd().Split('\n'));
            using var doc = JsonDocument.Parse(line);
            var error = doc.RootElement.GetProperty("error");
            Assert.Equal(kind, error.GetProperty("kind").GetString());
            Assert.Equal(exit, error.GetProperty("exitCode").GetInt32());
            Assert.False(string.IsNullOrEmpty(error.GetProperty("message").GetString()));
            Assert.True(error.TryGetProperty("path", out var path));
            if (kind == "fileNotFound") Assert.Equal(Path.GetFullPath(args[^(args[0] == "snapshot" ? 3 : 1)]), path.GetString());
        }
    }

    // Every verb that names an image's parent gives it as info does: the same object, from one place (issue 13: reset
    // gave a plain path).
    [Theory]
    [InlineData("vhdx")]
    [InlineData("vdi")]
    [InlineData("qcow2")]
    [InlineData("vhd")]
    public async Task A_parent_is_the_object_info_gives_in_every_verb_that_names_one(string ext)
    {
        using var dir = new TempDirectory("jsonparent");
        string F(string name) => dir.File($"{name}.{ext}");
        await Ok("create", F("base"), "--size", "16M");
        await Ok("create", F("other"), "--size", "16M");
        foreach (var (image, args) in new (string, string[])[]
        {
            (F("child"), ["create", F("child"), "--parent", F("base")]),
            (F("linked"), ["clone", "--linked", F("base"), F("linked")]),
            (F("linked"), ["reset", F("linked")]),
            (F("linked"), ["rebase", F("linked"), "--parent", F("other"), "--unsafe"]),
        })
        {
            var r = await CliRunner.RunAsync([.. args, "--json"]);
            Assert.True(r.ExitCode == 0, $"dse {string.Join(' ', args)} --json: {r}");
            using var doc = JsonDocument.Parse(r.StdOut);
            Assert.True(doc.RootElement.TryGetProperty("parent", out var parent), $"dse {args[0]} --json names no parent: {r.StdOut}");
            var info = await CliRunner.InfoAsync(image);
            Assert.Equal(JsonValueKind.Object, parent.ValueKind);
            Assert.Equal(info.GetProperty("parent").GetRawText(), parent.GetRawText());
        }
        using var full = JsonDocument.Parse((await Ok("clone", F("linked"), F("flat"), "--json")).StdOut);
        Assert.Equal(JsonValueKind.Null, full.RootElement.GetProperty("parent").ValueKind);
    }

    // The VHDX region table (MS-VHDX 2.2.3.2) and the VHD parent locator entries are typed one fact per key, as the
    // file holds them (read here from the bytes, not through dse): they were one sentence each.
    [Fact]
    public async Task Info_gives_vhdx_regions_and_vhd_parent_locators_one_fact_per_key()
    {
        using var dir = new TempDirectory("jsonregions");
        await Ok("create", dir.File("b.vhdx"), "--size", "16M");
        await Ok("create", dir.File("c.vhdx"), "--parent", dir.File("b.vhdx"));
        var details = (await CliRunner.InfoAsync(dir.File("c.vhdx"))).GetProperty("details");
        var table = new byte[64 << 10];
        using (var f = File.OpenRead(dir.File("c.vhdx")))
        {
            f.Position = 192 << 10; // the first region table copy
            f.ReadExactly(table);
        }
        int count = BinaryPrimitives.ReadInt32LittleEndian(table.AsSpan(8));
        Assert.Equal(2, count);
        for (int i = 0; i < count; i++)
        {
            var e = table.AsSpan(16 + 32 * i, 32);
            var guid = new Guid(e[..16]);
            Assert.Equal(guid.ToString("B"), details.GetProperty($"region{i}Guid").GetString());
            Assert.Equal(guid == new Guid("2DC27766-F623-4200-9D64-115E9BFD4A08") ? "BAT" : "Metadata", details.GetProperty($"region{i}Name").GetString());
            Assert.Equal(BinaryPrimitives.ReadInt64LittleEndian(e[16..]), details.GetProperty($"region{i}FileOffset").GetInt64());
            Assert.Equal(BinaryPrimitives.ReadUInt32LittleEndian(e[24..]), details.GetProperty($"region{i}Length").GetUInt32());
            Assert.Equal((BinaryPrimitives.ReadUInt32LittleEndian(e[28..]) & 1) == 1, details.GetProperty($"region{i}Required").GetBoolean());
        }
        Assert.False(details.TryGetProperty("regions", out _));

        await Ok("create", dir.File("b.vhd"), "--size", "16M");
        await Ok("create", dir.File("c.vhd"), "--parent", dir.File("b.vhd"));
        details = (await CliRunner.InfoAsync(dir.File("c.vhd"))).GetProperty("details");
        var bytes = File.ReadAllBytes(dir.File("c.vhd"));
        long header = (long)BinaryPrimitives.ReadUInt64BigEndian(bytes.AsSpan(bytes.Length - 512 + 16)); // footer Data Offset
        var paths = new[] { ".\\b.vhd", Path.GetFullPath(dir.File("b.vhd")).Replace('/', '\\'), new Uri(dir.File("b.vhd")).AbsoluteUri };
        var codes = new[] { "W2ru", "W2ku", "MacX" };
        for (int i = 0; i < 3; i++)
        {
            var e = bytes.AsSpan((int)header + 576 + 24 * i, 24);
            string key = $"parentLocatorEntry{i}";
            Assert.Equal(codes[i], System.Text.Encoding.ASCII.GetString(e[..4]));
            Assert.Equal(codes[i], details.GetProperty($"{key}PlatformCode").GetString());
            Assert.Equal(BinaryPrimitives.ReadUInt32BigEndian(e[4..]), details.GetProperty($"{key}PlatformDataSpace").GetUInt32());
            Assert.Equal(BinaryPrimitives.ReadUInt32BigEndian(e[8..]), details.GetProperty($"{key}PlatformDataLength").GetUInt32());
            Assert.Equal(BinaryPrimitives.ReadInt64BigEndian(e[16..]), details.GetProperty($"{key}PlatformDataOffset").GetInt64());
            Assert.Equal(paths[i], details.GetProperty($"{key}Path").GetString());
        }
        Assert.False(details.TryGetProperty("parentLocatorEntry0", out _));
        CheckDocument("info", (await Ok("info", dir.File("c.vhd"), "--json")).StdOut);
    }

    // info --json shows each format's own header fields (details): typed in every format, base and child.
    [Theory]
    [InlineData("vhdx")]
    [InlineData("vdi")]
    [InlineData("qcow2")]
    [InlineData("vhd")]
    public async Task Info_details_are_typed_for_every_format(string ext)
    {
        using var dir = new TempDirectory("jsondetails");
        await Ok("create", dir.File($"base.{ext}"), "--size", "16M");
        await Ok("create", dir.File($"child.{ext}"), "--parent", dir.File($"base.{ext}"));
        await CheckInfo(dir.File($"base.{ext}"), dir.File($"child.{ext}"));
    }

    // Images made by qemu-img (qcow2 extended L2 and internal snapshots, fixed and dynamic VHD, raw) and the real
    // third-party fixtures.
    [SharedFixtureFact]
    public async Task Info_details_are_typed_for_foreign_images_and_fixtures()
    {
        using var dir = new TempDirectory("jsondetails");
        string Qemu(string name, string format, string options)
        {
            string path = dir.File(name);
            ExternalTool.RunChecked("qemu-img", "create", "-q", "-f", format, "-o", options, path, "16M");
            return path;
        }
        string extended = Qemu("extended.qcow2", "qcow2", "extended_l2=on,cluster_size=64k");
        ExternalTool.RunChecked("qemu-io", "-c", "write 0 64k", extended);
        ExternalTool.RunChecked("qemu-img", "snapshot", "-c", "first", extended);
        string raw = dir.File("plain.raw");
        File.WriteAllBytes(raw, new byte[1 << 20]);
        var images = new List<string>
        {
            extended, Qemu("fixed.vhd", "vpc", "subformat=fixed"), Qemu("dynamic.vhd", "vpc", "subformat=dynamic"), raw,
        };
        foreach (var name in new[] { "basic.vdi.gz", "dynamic.vhdx.gz", "fixed.vhdx.gz", "virtualbox-parent.vdi.gz" })
            images.Add(SharedFixtures.Extract(name, dir.Path));
        await CheckInfo([.. images]);
    }

    private static async Task CheckInfo(params string[] images)
    {
        foreach (var image in images)
            foreach (var args in new[] { new[] { "info", image, "--json" }, ["info", image, "--chain", "--json"] })
            {
                var r = await CliRunner.RunAsync(args);
                Assert.True(r.ExitCode == 0, $"dse {string.Join(' ', args)}: {r}");
                using var doc = JsonDocument.Parse(r.StdOut);
                Assert.True(doc.RootElement.TryGetProperty("details", out _) || doc.RootElement.TryGetProperty("layers", out _),
                    $"dse {string.Join(' ', args)} shows no details: {r.StdOut}");
                CheckDocument("info", r.StdOut);
            }
    }

    private static IEnumerable<string> AllVerbs()
    {
        var root = CommandCatalog.BuildRoot();
        static IEnumerable<string> Walk(Command c, string prefix) => c.Subcommands.Count == 0
            ? [prefix]
            : c.Subcommands.SelectMany(s => Walk(s, prefix.Length == 0 ? s.Name : $"{prefix} {s.Name}"));
        return Walk(root, "");
    }

    // serve runs until a signal: started in-process, stopped as SIGINT would once it announced where it listens.
    private static async Task<CliResult> ServeOnce(string image)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var host = new CliHost { Out = output, Error = error, OpenStdin = () => Stream.Null, OpenStdout = () => Stream.Null };
        using var signal = new CancellationSignal();
        var run = CliApp.RunAsync(["serve", image, "--port", "0", "--read-only", "--json"], host, signal);
        for (int i = 0; i < 600 && output.ToString().Length == 0 && !run.IsCompleted; i++) await Task.Delay(50);
        signal.Raise(ExitCodes.Interrupted);
        int code = await run.WaitAsync(TimeSpan.FromMinutes(1));
        Assert.True(code == 0, $"serve: exit {code}: {error}");
        return new CliResult(code, output.ToString(), error.ToString(), []);
    }

    private static void CheckDocument(string verb, string stdout)
    {
        using var doc = JsonDocument.Parse(stdout);
        Walk(verb, "$", doc.RootElement);
    }

    private static void Walk(string verb, string at, JsonElement e)
    {
        switch (e.ValueKind)
        {
            case JsonValueKind.Object:
                foreach (var p in e.EnumerateObject())
                {
                    Assert.True(CamelCase().IsMatch(p.Name), $"{verb}: key '{p.Name}' at {at} is not camelCase");
                    // What was copied is one pair of names at the top of the document, as clone, merge and rebase give it.
                    // A path is one file's full path wherever it is shown (snapshot create gave the catalog's relative name).
                    if (p.Name is "image" or "file" or "source" or "target" or "output" && p.Value.ValueKind == JsonValueKind.String)
                        Assert.True(Path.IsPathRooted(p.Value.GetString()), $"{verb}: {at}.{p.Name} is \"{p.Value.GetString()}\", not a full path");
                    if (p.Name is "bytesWritten" or "bytesZero")
                        Assert.True(at == "$", $"{verb}: {at}.{p.Name} is nested; the README puts bytesWritten/bytesZero at the top");
                    Walk(verb, $"{at}.{p.Name}", p.Value);
                }
                break;
            case JsonValueKind.Array:
                var strings = e.EnumerateArray().Where(x => x.ValueKind == JsonValueKind.String).Select(x => x.GetString()).ToList();
                Assert.True(strings.Count == strings.Distinct().Count(), $"{verb}: {at} lists an entry twice");
                int i = 0;
                foreach (var x in e.EnumerateArray()) Walk(verb, $"{at}[{i++}]", x);
                break;
            case JsonValueKind.Number:
                // Absent values are null: a -1 stands for "none" only in the library's records.
                Assert.False(e.GetRawText() == "-1", $"{verb}: {at} is -1, where the README says an absent value is null");
                break;
            case JsonValueKind.String:
                Assert.False(NumberOrBooleanText().IsMatch(e.GetString()!), $"{verb}: {at} is the text \"{e.GetString()}\", not a JSON number or boolean");
                break;
        }
    }

    // With --json, whatever dse says besides the result is a JSON object per line too.
    private static void CheckStderr(string verb, string stderr)
    {
        foreach (var line in stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            using var doc = JsonDocument.Parse(line);
            var member = Assert.Single(doc.RootElement.EnumerateObject());
            Assert.Contains(member.Name, new[] { "note", "warning" });
            Walk(verb, "stderr", doc.RootElement);
        }
    }
}
