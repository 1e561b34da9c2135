using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Formats.Vhd;

/// <summary>
/// check --repair on a dynamic or differencing VHD whose end-of-file footer is gone (a crash as the file grew, a copy
/// cut short): dse reads the copy at offset 0, but Hyper-V and libvhdi need the footer at the end. Writing it back from
/// the copy changes no content, so --repair does it, as the next write would. The other way round too: a copy at offset 0
/// that is missing, damaged or stale beside a valid end footer (the spec's authoritative one) is rewritten from it.
/// </summary>
public sealed class VhdRepairTests
{
    [RequiresToolFact("vhdiinfo", "qemu-img")]
    public async Task Repair_puts_back_a_missing_end_footer_from_its_copy_and_libvhdi_opens_the_file_again()
    {
        using var dir = new TempDirectory("vhd-repair");
        var (baseVhd, child) = await BaseAndChild(dir, 1000000, 5000, seed: 11);

        foreach (string image in new[] { baseVhd, child })
        {
            await CliRunner.OkAsync("export", image, image + ".before.raw");
            using (var f = new FileStream(image, FileMode.Open)) f.SetLength(f.Length - 512); // the end footer is gone
            Assert.NotEqual(0, ExternalTool.Run("vhdiinfo", image).ExitCode);
            var check = await CliRunner.OkAsync("check", image);
            Assert.Contains("the end of the file holds no valid footer", check.StdOut + check.StdErr);

            var repair = await CliRunner.OkAsync("check", "--repair", image);
            Assert.Contains("1 problem(s) fixed, 0 remaining", repair.StdOut);
            var after = await CliRunner.OkAsync("check", image);
            Assert.Contains("no problems found", after.StdOut);
            Assert.Equal(0, ExternalTool.Run("vhdiinfo", image).ExitCode);
            await CliRunner.OkAsync("export", image, image + ".after.raw");
            Assert.Equal(ContentHash.OfFile(image + ".before.raw"), ContentHash.OfFile(image + ".after.raw"));
        }
        Assert.Equal(0, ExternalTool.Run("qemu-img", "compare", "-f", "vpc", "-F", "raw", baseVhd, baseVhd + ".before.raw").ExitCode);
    }

    /// <summary>How the copy at offset 0 is spoiled: zeroed (never written), one bit flipped (a bad checksum), stale (a
    /// valid footer of another Unique Id, as a crash between set-identity's two writes leaves it).</summary>
    [RequiresToolTheory("vhdiinfo", "qemu-img")]
    [InlineData("zeroed")]
    [InlineData("bit flipped")]
    [InlineData("stale")]
    public async Task Repair_rewrites_a_spoiled_footer_copy_at_offset_0_from_the_valid_end_footer_in_one_sector(string damage)
    {
        using var dir = new TempDirectory("vhd-repair-copy");
        var (baseVhd, child) = await BaseAndChild(dir, 700000, 9000, seed: 12);

        foreach (string image in new[] { child, baseVhd }) // the child first: it must not need its parent's copy
        {
            await CliRunner.OkAsync("export", image, image + ".before.raw");
            long length = new FileInfo(image).Length;
            byte[] endFooter = VhdTestKit.ReadAt(image, length - 512, 512);
            Assert.Equal(endFooter, VhdTestKit.ReadAt(image, 0, 512));
            switch (damage)
            {
                case "zeroed": VhdTestKit.Patch(image, 0, new byte[512]); break;
                case "bit flipped": VhdTestKit.Patch(image, 100, [(byte)(endFooter[100] ^ 0x10)]); break;
                default:
                    VhdTestKit.Patch(image, 68, Guid.NewGuid().ToByteArray()); // Unique Id
                    VhdTestKit.ResealFooter(image, 0);
                    break;
            }
            byte[] spoiledRest = VhdTestKit.ReadAt(image, 512, (int)length - 512);
            var check = await CliRunner.RunAsync("check", image);
            Assert.Contains("the footer copy at offset 0 is missing, damaged or not the same as the footer", check.StdOut + check.StdErr);

            var repair = await CliRunner.OkAsync("check", "--repair", image);
            Assert.Contains("1 problem(s) fixed, 0 remaining", repair.StdOut);
            // One sector changed, to the end footer byte for byte; nothing else, not the length.
            Assert.Equal(length, new FileInfo(image).Length);
            Assert.Equal(endFooter, VhdTestKit.ReadAt(image, 0, 512));
            Assert.Equal(spoiledRest, VhdTestKit.ReadAt(image, 512, (int)length - 512));
            Assert.Contains("no problems found", (await CliRunner.OkAsync("check", image)).StdOut);
            var vhdiinfo = ExternalTool.Run("vhdiinfo", image);
            Assert.True(vhdiinfo.ExitCode == 0, vhdiinfo.StdErr);
            await CliRunner.OkAsync("export", image, image + ".after.raw");
            Assert.Equal(ContentHash.OfFile(image + ".before.raw"), ContentHash.OfFile(image + ".after.raw"));
        }
        // qemu's vpc driver reads the copy at offset 0: it opens the base again and reads what dse read.
        var compare = ExternalTool.Run("qemu-img", "compare", "-f", "vpc", "-F", "raw", baseVhd, baseVhd + ".before.raw");
        Assert.True(compare.ExitCode == 0, compare.StdOut + compare.StdErr);
        var info = ExternalTool.RunChecked("qemu-img", "info", "-f", "vpc", "--output=json", child);
        Assert.Contains("\"virtual-size\": 16777216", info);
    }

    // A 16 MiB dynamic VHD and a differencing child, each with 3 MiB written (at baseAt and childAt).
    private static async Task<(string Base, string Child)> BaseAndChild(TempDirectory dir, int baseAt, int childAt, int seed)
    {
        string baseVhd = dir.File("base.vhd"), child = dir.File("child.vhd"), data = dir.File("d.bin");
        await CliRunner.OkAsync("create", baseVhd, "--size", "16M");
        File.WriteAllBytes(data, RandomData.Bytes(3 << 20, seed));
        await CliRunner.OkAsync("write", baseVhd, "--offset", baseAt.ToString(), "--input", data);
        await CliRunner.OkAsync("create", child, "--parent", baseVhd);
        await CliRunner.OkAsync("write", child, "--offset", childAt.ToString(), "--input", data);
        return (baseVhd, child);
    }
}
