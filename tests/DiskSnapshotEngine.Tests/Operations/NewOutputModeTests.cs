using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Operations;

/// <summary>
/// A full clone or an export of a disk is never readable by more users than the disk: as <c>cp</c> makes it, the new
/// file has the mode of a new file (0666 less the umask) less every group and other permission that a layer of the
/// source chain denies. A clone of a private 0600 golden was world-readable (0644) before.
/// </summary>
public class NewOutputModeTests
{
    [Fact]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public async Task A_clone_or_export_takes_no_group_or_other_permission_a_layer_of_its_source_denies()
    {
        using var dir = new TempDirectory("output-mode");
        string golden = dir.File("golden.vhdx"), child = dir.File("child.qcow2"), input = dir.File("in.bin");
        await CliRunner.OkAsync("create", golden, "--size", "8M");
        File.WriteAllBytes(input, RandomData.Bytes(70_000, 5));
        await CliRunner.OkAsync("write", golden, "--offset", "0", "--input", input);
        await CliRunner.OkAsync("create", child, "--parent", golden);
        File.WriteAllText(dir.File("probe"), "");
        var fresh = File.GetUnixFileMode(dir.File("probe")); // what the umask leaves of 0666
        var ownerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
        var groupRead = UnixFileMode.GroupRead;

        int n = 0;
        foreach (var (goldenMode, childMode) in new[] { (UnixFileMode.UserRead | UnixFileMode.UserWrite, fresh), (fresh, UnixFileMode.UserRead | UnixFileMode.UserWrite | groupRead), (fresh, fresh) })
        {
            File.SetUnixFileMode(golden, goldenMode);
            File.SetUnixFileMode(child, childMode);
            var expected = fresh & (ownerOnly | goldenMode) & (ownerOnly | childMode);
            foreach (var ext in new[] { "vhdx", "vdi", "qcow2", "vhd", "img" })
            {
                string clone = dir.File($"clone{n++}.{ext}");
                await CliRunner.OkAsync("clone", child, clone);
                Assert.True(expected == File.GetUnixFileMode(clone), $"clone to {ext} of {goldenMode}/{childMode}: {File.GetUnixFileMode(clone)}, expected {expected}");
            }
            string export = dir.File($"export{n++}.raw");
            await CliRunner.OkAsync("export", child, export);
            Assert.True(expected == File.GetUnixFileMode(export), $"export of {goldenMode}/{childMode}: {File.GetUnixFileMode(export)}, expected {expected}");
            await CliRunner.OkAsync("export", child, export, "--force", "--no-sync");
            Assert.True(expected == File.GetUnixFileMode(export), $"export --force of {goldenMode}/{childMode}: {File.GetUnixFileMode(export)}");
        }
    }
}
