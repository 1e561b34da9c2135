using System.Text.Json;
using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;
using DiskSnapshotEngine.Tests.Operations;

namespace DiskSnapshotEngine.Tests.Formats.Vhd;

/// <summary>
/// <c>--profile azure</c>: create and clone make the fixed VHD Azure takes (a whole number of MiB, rounded up and said so,
/// the file that size plus the 512-byte footer); check says whether a file would be taken, and why not.
/// </summary>
public sealed class VhdAzureTests : IDisposable
{
    private const long MiB = 1 << 20;
    private readonly TempDirectory _dir = new("vhd-azure");

    public void Dispose() => _dir.Dispose();

    private static async Task<List<string>> AzureReasons(string path, int expectedExit)
    {
        var r = await CliRunner.RunAsync("check", path, "--profile", "azure", "--json");
        Assert.True(r.ExitCode == expectedExit, r.ToString());
        using var doc = JsonDocument.Parse(r.StdOut);
        Assert.Equal(expectedExit == 0, doc.RootElement.GetProperty("accepted").GetBoolean());
        return doc.RootElement.GetProperty("reasons").EnumerateArray().Select(e => e.GetString()!).ToList();
    }

    [Fact]
    public async Task Create_rounds_the_size_up_to_whole_MiB_says_so_and_writes_data_plus_footer_only()
    {
        string path = _dir.File("az.vhd");
        var r = await CliRunner.RunAsync("create", path, "--size", "30000000", "--profile", "azure");
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains("rounded up from 30000000 bytes to 29 MiB", r.StdErr);
        Assert.Equal(29 * MiB + 512, new FileInfo(path).Length);
        using (var chain = DiskImage.Open(path))
        {
            Assert.Equal((ImageFormat.Vhd, ImageType.Fixed, 29 * MiB), (chain.Top.Format, chain.Top.Type, chain.VirtualSize));
        }
        Assert.Empty(await AzureReasons(path, 0));

        // A size already whole: nothing to say.
        var exact = await CliRunner.RunAsync("create", _dir.File("exact.vhd"), "--size", "20M", "--profile", "azure");
        Assert.True(exact.ExitCode == 0, exact.ToString());
        Assert.DoesNotContain("rounded", exact.StdErr);
    }

    [Fact]
    public async Task A_size_out_of_range_is_refused_naming_the_full_path_as_every_error_does()
    {
        string full = _dir.File("small.vhd");
        string typed = Path.GetRelativePath(Environment.CurrentDirectory, full); // as a user types it in the current folder
        var r = await CliRunner.RunAsync("create", typed, "--size", "10M", "--profile", "azure", "--json");
        Assert.Equal(14, r.ExitCode);
        using var error = JsonDocument.Parse(r.StdErr.Trim());
        Assert.Equal(full, error.RootElement.GetProperty("error").GetProperty("path").GetString());
        Assert.StartsWith(full + ": Azure takes disks of 20 MiB", error.RootElement.GetProperty("error").GetProperty("message").GetString());
        Assert.False(File.Exists(full));
    }

    [Theory]
    [InlineData("--type", "dynamic")]
    [InlineData("--block-size", "1M")]
    [InlineData("--logical-sector-size", "4096")]
    public async Task Options_that_contradict_the_profile_are_usage_errors(string option, string value)
    {
        var r = await CliRunner.RunAsync("create", _dir.File("x.vhd"), "--size", "30M", "--profile", "azure", option, value);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("--profile azure", r.StdErr);
        var named = await CliRunner.RunAsync("create", _dir.File("x.img"), "--size", "30M", "--profile", "azure");
        Assert.Equal(2, named.ExitCode);
        Assert.False(File.Exists(_dir.File("x.vhd")) || File.Exists(_dir.File("x.img")));
    }

    [Fact]
    public async Task Clone_flattens_any_chain_into_an_Azure_VHD_with_a_zero_tail()
    {
        const long size = 21 * MiB + 4096;
        var model = new byte[size];
        var rng = new Random(8);
        OpsKit.CreateBase(_dir.File("base.vdi"), size);
        OpsKit.RandomWrites(_dir.File("base.vdi"), rng, 5, model);
        OpsKit.CreateChild(_dir.File("top.vdi"), _dir.File("base.vdi"));
        OpsKit.RandomWrites(_dir.File("top.vdi"), rng, 5, model);

        string azure = _dir.File("upload.vhd");
        var r = await CliRunner.RunAsync("clone", _dir.File("top.vdi"), azure, "--profile", "azure");
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains("rounded up", r.StdErr);
        Assert.Equal(22 * MiB + 512, new FileInfo(azure).Length);
        var content = OpsKit.ReadAll(azure);
        Assert.Equal(22 * MiB, content.Length);
        Assert.True(content.AsSpan(0, (int)size).SequenceEqual(model), "the source's bytes");
        Assert.True(content.AsSpan((int)size).IndexOfAnyExcept((byte)0) < 0, "the added tail reads as zeros");
        Assert.Empty(await AzureReasons(azure, 0));
        if (ExternalTool.Has("qemu-img"))
            Assert.Contains($"\"virtual-size\": {22 * MiB}", ExternalTool.RunChecked("qemu-img", "info", "--output=json", "-f", "vpc", azure));

        var linked = await CliRunner.RunAsync("clone", "--linked", _dir.File("top.vdi"), _dir.File("l.vhd"), "--profile", "azure");
        Assert.Equal(2, linked.ExitCode);
    }

    [Fact]
    public async Task Check_refuses_each_thing_Azure_refuses_and_says_why()
    {
        // Dynamic.
        string dynamic = _dir.File("dyn.vhd");
        OpsKit.CreateBase(dynamic, 30 * MiB);
        Assert.Contains(await AzureReasons(dynamic, 1), m => m.Contains("only fixed VHDs"));

        // Fixed, but not a whole number of MiB.
        string odd = _dir.File("odd.vhd");
        using (DiskImage.Create(odd, new ImageCreateOptions(30 * MiB + 512, ImageType.Fixed))) { }
        Assert.Contains(await AzureReasons(odd, 1), m => m.Contains("not a whole number of MiB"));

        // Too small for a managed disk.
        string small = _dir.File("small.vhd");
        using (DiskImage.Create(small, new ImageCreateOptions(4 * MiB, ImageType.Fixed))) { }
        Assert.Contains(await AzureReasons(small, 1), m => m.Contains("20 MiB to 32 TiB"));

        // Bytes between the data and the footer: the file is not size + 512.
        string padded = _dir.File("padded.vhd");
        using (DiskImage.Create(padded, new ImageCreateOptions(20 * MiB, ImageType.Fixed))) { }
        var footer = VhdTestKit.ReadAt(padded, 20 * MiB, 512);
        VhdTestKit.Patch(padded, 20 * MiB, new byte[4096]);
        VhdTestKit.Patch(padded, 20 * MiB + 4096, footer);
        Assert.Contains(await AzureReasons(padded, 1), m => m.Contains("not the virtual size plus the 512-byte footer"));

        // A wrong footer checksum.
        string sum = _dir.File("sum.vhd");
        using (DiskImage.Create(sum, new ImageCreateOptions(20 * MiB, ImageType.Fixed))) { }
        VhdTestKit.Patch(sum, 20 * MiB + 100, new byte[] { 0x42 });
        Assert.Contains(await AzureReasons(sum, 1), m => m.Contains("Checksum"));

        // Not a VHD at all.
        string vhdx = _dir.File("disk.vhdx");
        OpsKit.CreateBase(vhdx, 30 * MiB);
        Assert.Contains(await AzureReasons(vhdx, 1), m => m.Contains("VHDX"));

        // The text form lists the reasons under one line.
        var text = await CliRunner.RunAsync("check", dynamic, "--profile", "azure");
        Assert.Equal(1, text.ExitCode);
        Assert.Contains("Azure would refuse it", text.StdOut);
    }

    [RequiresToolFact("qemu-img")]
    public async Task The_image_qemu_makes_for_Azure_is_accepted_and_a_wrongly_sized_one_is_not()
    {
        string raw = _dir.File("src.raw");
        VhdTestKit.WriteRaw(raw, 24 * MiB, 4);
        VhdTestKit.QemuConvert(raw, _dir.File("good.vhd"), "fixed", forceSize: true);
        Assert.Empty(await AzureReasons(_dir.File("good.vhd"), 0));
        // Without force_size qemu sizes the disk by CHS: 24 MiB becomes a size Azure refuses.
        VhdTestKit.QemuConvert(raw, _dir.File("chs.vhd"), "fixed", forceSize: false);
        Assert.Contains(await AzureReasons(_dir.File("chs.vhd"), 1), m => m.Contains("not a whole number of MiB"));
    }
}
