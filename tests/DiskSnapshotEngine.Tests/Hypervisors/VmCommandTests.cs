using System.Xml.Linq;
using DiskSnapshotEngine.Cli;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Hypervisors;

/// <summary><c>dse vm ...</c> end to end in-process on a real raw image.</summary>
public class VmCommandTests
{
    private static string RawDisk(TempDirectory dir, string name = "boot disk.img")
    {
        var path = dir.File(name);
        using (DiskImage.Create(path, new ImageCreateOptions(8L << 20))) { }
        return path;
    }

    [Fact]
    public async Task Virtualbox_dry_run_prints_VBoxManage_commands_and_writes_nothing()
    {
        using var dir = new TempDirectory("vmcli");
        var disk = RawDisk(dir);
        var r = await CliRunner.RunAsync("vm", "register", "virtualbox", "--name", "cli vm", "--disk", disk, "--folder", dir.File("vms"), "--memory", "256", "--dry-run");
        Assert.True(r.ExitCode == 0, r.ToString());
        var lines = r.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.StartsWith("VBoxManage createvm --name 'cli vm' --ostype Other_64", lines[0]);
        Assert.Equal("VBoxManage modifyvm 'cli vm' --memory 256 --cpus 1", lines[1]);
        Assert.EndsWith($"--medium '{disk}'", lines[^1]);
        Assert.False(Directory.Exists(dir.File("vms")));
    }

    // Skipped where VBoxManage is installed: a test must not register a real VM on the developer's machine.
    [RequiresVboxSchemaFact(withoutVBoxManage: true)]
    public async Task Virtualbox_register_writes_a_valid_machine_file_and_says_how_to_register_without_VBoxManage()
    {
        using var dir = new TempDirectory("vmcli");
        var disk = RawDisk(dir);
        var r = await CliRunner.RunAsync("vm", "register", "virtualbox", "--name", "cli", "--disk", disk, "--folder", dir.Path);
        Assert.True(r.ExitCode == 0, r.ToString());
        var vbox = System.IO.Path.Combine(dir.Path, "cli", "cli.vbox");
        Assert.Contains($"wrote {vbox}", r.StdOut);
        Assert.Contains("VBoxManage registervm", r.StdErr);
        HypervisorTestData.AssertValidatesAgainstVirtualBoxSchema(vbox);

        var again = await CliRunner.RunAsync("vm", "register", "virtualbox", "--name", "cli", "--disk", disk, "--folder", dir.Path);
        Assert.Equal(ExitCodes.ForKind(ErrorKind.AlreadyExists), again.ExitCode);
    }

    [RequiresToolFact("virsh")]
    public async Task Libvirt_register_defines_through_the_real_virsh_test_driver()
    {
        using var dir = new TempDirectory("vmcli");
        var disk = RawDisk(dir);
        var r = await CliRunner.RunAsync("vm", "register", "libvirt", "--name", "cli-dom", "--disk", disk, "--connect", "test:///default");
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains("defined libvirt domain 'cli-dom'", r.StdOut);

        var dry = await CliRunner.RunAsync("vm", "register", "libvirt", "--name", "cli-dom", "--disk", disk, "--dry-run");
        Assert.Equal(0, dry.ExitCode);
        var xml = XDocument.Parse(dry.StdOut);
        Assert.Equal(disk, (string?)xml.Descendants("source").Single().Attribute("file"));
        Assert.Contains("virsh define cli-dom.xml", dry.StdErr);
    }

    [Fact]
    public async Task Hyperv_refuses_a_raw_disk_and_checkpoint_prints_a_quoted_script_off_Windows()
    {
        using var dir = new TempDirectory("vmcli");
        var disk = RawDisk(dir);
        var refused = await CliRunner.RunAsync("vm", "register", "hyperv", "--name", "h", "--disk", disk);
        Assert.Equal(ExitCodes.ForKind(ErrorKind.Unsupported), refused.ExitCode);
        Assert.Contains("Hyper-V opens only VHD and VHDX", refused.StdErr);

        var bad = await CliRunner.RunAsync("vm", "register", "hyperv", "--name", "h", "--disk", disk, "--generation", "3");
        Assert.Equal(ExitCodes.Usage, bad.ExitCode);

        var cp = await CliRunner.RunAsync("vm", "checkpoint", "hyperv", "--name", "Zoë's vm", "--snapshot-name", "pre ‘patch’", "--dry-run");
        Assert.True(cp.ExitCode == 0, cp.ToString());
        var line = cp.StdOut.Split('\n').Single(l => l.StartsWith("Checkpoint-VM", StringComparison.Ordinal));
        Assert.Equal(new[] { "Checkpoint-VM", "-Name", "Zoë's vm", "-SnapshotName", "pre ‘patch’" }, HyperVTests.Tokens(line));
    }

    [Fact]
    public async Task Missing_disk_is_file_not_found()
    {
        using var dir = new TempDirectory("vmcli");
        var r = await CliRunner.RunAsync("vm", "register", "libvirt", "--name", "x", "--disk", dir.File("nope.img"), "--dry-run");
        Assert.Equal(ExitCodes.ForKind(ErrorKind.FileNotFound), r.ExitCode);
    }
}
