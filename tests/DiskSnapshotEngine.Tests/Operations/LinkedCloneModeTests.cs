using System.Runtime.Versioning;
using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Operations;

/// <summary>
/// A linked clone carries copies of its parent's sectors (a qcow2's or VDI's partially written clusters), so it takes
/// no group or other permission its parent denies, as a full clone does: a clone of a 0600 golden is 0600 whatever the umask.
/// </summary>
[UnsupportedOSPlatform("windows")]
public class LinkedCloneModeTests
{
    [LinuxFact]
    public async Task A_linked_clone_of_a_private_golden_is_private()
    {
        using var dir = new TempDirectory("linked-mode");
        foreach (var format in new[] { "vhdx", "qcow2", "vdi", "vhd" })
        {
            string golden = dir.File($"g.{format}"), clone = dir.File($"c.{format}"), created = dir.File($"k.{format}");
            await CliRunner.OkAsync("create", golden, "--size", "8M");
            File.SetUnixFileMode(golden, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            await CliRunner.OkAsync("clone", "--linked", golden, clone);
            await CliRunner.OkAsync("create", created, "--parent", golden);
            foreach (var child in new[] { clone, created })
                Assert.True((File.GetUnixFileMode(child) & (UnixFileMode)0x3F) == 0, $"{child}: {File.GetUnixFileMode(child)}");
        }
    }
}
