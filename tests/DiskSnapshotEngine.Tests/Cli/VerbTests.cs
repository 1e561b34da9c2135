using System.Text.Json;
using DiskSnapshotEngine.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;
using static DiskSnapshotEngine.Tests.Cli.VerbScenarios;

namespace DiskSnapshotEngine.Tests.Cli;

/// <summary>Every verb on raw images (always available).</summary>
public class RawVerbTests
{
    [RequiresToolFact("qemu-img")] public Task Round_trip() => Create_write_export_round_trip("img");
    [Fact] public Task Write_past_end() => Write_past_the_end_is_refused_before_writing("img");
    [Fact] public Task Sparse_export() => Sparse_export_leaves_holes("img");
    [Fact] public Task Info_json() => Info_json_has_the_documented_fields("img", "raw");
    [Fact] public Task Check_clean() => Check_reports_a_clean_image("img");

    [Fact]
    public async Task Fixed_raw_is_fully_allocated_and_dynamic_raw_is_sparse()
    {
        using var dir = new TempDirectory("cli");
        await Ok("create", dir.File("fixed.raw"), "--size", "4M", "--type", "fixed");
        await Ok("create", dir.File("dynamic.raw"), "--size", "4M");
        Assert.True(AllocatedBytes(dir.File("fixed.raw")) >= 4 << 20);
        Assert.True(AllocatedBytes(dir.File("dynamic.raw")) < 1 << 20);
    }

    [Fact]
    public async Task Create_refuses_to_overwrite_and_unknown_extensions()
    {
        using var dir = new TempDirectory("cli");
        File.WriteAllText(dir.File("x.img"), "keep me");
        var r = await CliRunner.RunAsync("create", dir.File("x.img"), "--size", "1M");
        Assert.Equal(ExitCodes.AlreadyExists, r.ExitCode);
        Assert.Equal("keep me", File.ReadAllText(dir.File("x.img")));
        var ext = await CliRunner.RunAsync("create", dir.File("x.vmdk"), "--size", "1M");
        Assert.Equal(ExitCodes.InvalidArgument, ext.ExitCode);
        Assert.False(File.Exists(dir.File("x.vmdk")));
    }

    [Fact]
    public async Task A_raw_image_cannot_be_a_child()
    {
        using var dir = new TempDirectory("cli");
        await Ok("create", dir.File("p.img"), "--size", "1M");
        var r = await CliRunner.RunAsync("create", dir.File("c.img"), "--parent", dir.File("p.img"));
        Assert.Equal(ExitCodes.Unsupported, r.ExitCode);
        Assert.False(File.Exists(dir.File("c.img")));
    }

    [Fact]
    public async Task Export_refuses_to_overwrite_unless_forced_and_never_its_own_image()
    {
        using var dir = new TempDirectory("cli");
        string image = dir.File("d.img");
        await Ok("create", image, "--size", "1M");
        File.WriteAllText(dir.File("out.raw"), "old");
        Assert.Equal(ExitCodes.AlreadyExists, (await CliRunner.RunAsync("export", image, dir.File("out.raw"))).ExitCode);
        Assert.Equal("old", File.ReadAllText(dir.File("out.raw")));
        await Ok("export", image, dir.File("out.raw"), "--force");
        Assert.Equal(1 << 20, new FileInfo(dir.File("out.raw")).Length);
        var self = await CliRunner.RunAsync("export", image, image, "--force");
        Assert.Equal(ExitCodes.InvalidArgument, self.ExitCode);
        Assert.Equal(1 << 20, new FileInfo(image).Length);
    }

    [Fact]
    public async Task Vbox_registry_option_is_parsed_and_refused_until_wired()
    {
        using var dir = new TempDirectory("cli");
        string image = dir.File("d.img");
        await Ok("create", image, "--size", "1M");
        var missing = await CliRunner.RunAsync("info", image, "--chain", "--vbox-registry", dir.File("VirtualBox.xml"));
        Assert.Equal(ExitCodes.FileNotFound, missing.ExitCode);
        await Ok("info", image, "--chain", "--search-path", dir.Path, "--search-path", "/tmp", "--ignore-parent-mismatch");
    }

    [Fact]
    public async Task Help_explains_every_verb_and_option()
    {
        var root = await Ok("--help");
        foreach (var verb in new[] { "create", "info", "write", "export", "check", "demo" })
        {
            Assert.Contains(verb, root.StdOut);
            var help = await Ok(verb, "--help");
            Assert.Contains("Usage:", help.StdOut);
            // Every option line carries a description after its name.
            foreach (var line in help.StdOut.Split('\n').Where(l => l.TrimStart().StartsWith("--")))
                Assert.Matches(@"^\s*--\S+(\s<[^>]+>)?(\s\(REQUIRED\))?\s{2,}\S", line);
        }
    }

    [Fact]
    public async Task Json_output_is_camel_case_and_parseable()
    {
        using var dir = new TempDirectory("cli");
        string image = dir.File("d.img");
        await Ok("create", image, "--size", "1M");
        File.WriteAllBytes(dir.File("in"), new byte[] { 1, 2, 3 });
        var w = await Ok("write", image, "--offset", "0", "--input", dir.File("in"), "--json");
        using var doc = JsonDocument.Parse(w.StdOut);
        Assert.Equal(3, doc.RootElement.GetProperty("bytesWritten").GetInt64());
        Assert.Equal(0, doc.RootElement.GetProperty("offset").GetInt64());
    }
}

/// <summary>The same scenarios on VHDX.</summary>
public class VhdxVerbTests
{
    [RequiresToolFact("qemu-img")] public Task Round_trip() => Create_write_export_round_trip("vhdx");
    [Fact] public Task Write_past_end() => Write_past_the_end_is_refused_before_writing("vhdx");
    [Fact] public Task Sparse_export() => Sparse_export_leaves_holes("vhdx");
    [Fact] public Task Info_json() => Info_json_has_the_documented_fields("vhdx", "vhdx");
    [Fact] public Task Check_clean() => Check_reports_a_clean_image("vhdx");
    [Fact] public Task Child() => Child_reads_through_parent_and_leaves_it_unchanged("vhdx");
    [Fact] public Task Demo() => Demo_proves_every_claim("vhdx");
}

/// <summary>The same scenarios on VDI.</summary>
public class VdiVerbTests
{
    [RequiresToolFact("qemu-img")] public Task Round_trip() => Create_write_export_round_trip("vdi");
    [Fact] public Task Write_past_end() => Write_past_the_end_is_refused_before_writing("vdi");
    [Fact] public Task Sparse_export() => Sparse_export_leaves_holes("vdi");
    [Fact] public Task Info_json() => Info_json_has_the_documented_fields("vdi", "vdi");
    [Fact] public Task Check_clean() => Check_reports_a_clean_image("vdi");
    [Fact] public Task Child() => Child_reads_through_parent_and_leaves_it_unchanged("vdi");
    [Fact] public Task Demo() => Demo_proves_every_claim("vdi");

    [Fact]
    public async Task Info_json_shows_the_four_vdi_uuids()
    {
        using var dir = new TempDirectory("cli");
        string image = dir.File("d.vdi");
        await Ok("create", image, "--size", "4M");
        var r = await Ok("info", image, "--json");
        using var doc = JsonDocument.Parse(r.StdOut);
        var details = doc.RootElement.GetProperty("details");
        var uuidKeys = details.EnumerateObject().Where(p => p.Name.Contains("uuid", StringComparison.OrdinalIgnoreCase)).ToList();
        Assert.True(uuidKeys.Count >= 4, r.StdOut);
    }
}
