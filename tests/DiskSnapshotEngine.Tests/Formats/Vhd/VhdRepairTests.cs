using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Formats.Vhd;

/// <summary>
/// check --repair on a dynamic or differencing VHD whose end-of-file footer is gone (a crash as the file grew, a copy
/// cut short): dse reads the copy at offset 0, but Hyper-V and libvhdi need the footer at the end. Writing it back from
/// the copy changes no content, so --repair does it, as the next write would.
/// </summary>
public sealed class VhdRepairTests
{
    [RequiresToolFact("vhdiinfo", "qemu-img")]
    public async Task Repair_puts_back_a_missing_end_footer_from_its_copy_and_libvhdi_opens_the_file_again()
    {
        using var dir = new TempDirectory("vhd-repair");
        string baseVhd = dir.File("base.vhd"), child = dir.File("child.vhd"), data = dir.File("d.bin");
        await CliRunner.OkAsync("create", baseVhd, "--size", "16M");
        File.WriteAllBytes(data, RandomData.Bytes(3 << 20, seed: 11));
        await CliRunner.OkAsync("write", baseVhd, "--offset", "1000000", "--input", data);
        await CliRunner.OkAsync("create", child, "--parent", baseVhd);
        await CliRunner.OkAsync("write", child, "--offset", "5000", "--input", data);

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
}
