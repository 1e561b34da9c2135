using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Operations;

/// <summary>
/// A child named through a symbolic link (vms/d.qcow2 -> ../big/d.qcow2) whose parent is a relative name beside the
/// link: compact, reset and resize-by-rewrite open the chain where QEMU and dse info do (the link's folder), write the
/// new file over the link's target, and leave the link and the parent link resolving as before.
/// </summary>
public class RewriteThroughLinkTests
{
    [RequiresToolFact("qemu-img")]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public async Task Compact_reset_and_resize_of_a_linked_child_find_the_parent_beside_the_link()
    {
        using var dir = new TempDirectory("rewrite-link");
        string vms = Directory.CreateDirectory(dir.File("vms")).FullName, big = Directory.CreateDirectory(dir.File("big")).FullName;
        string baseImage = Path.Combine(vms, "base.qcow2"), link = Path.Combine(vms, "d.qcow2"), real = Path.Combine(big, "d.qcow2");
        string flat = dir.File("d.raw"), flatBase = dir.File("base.raw");
        ExternalTool.RunChecked("qemu-img", "create", "-q", "-f", "qcow2", baseImage, "8M");
        ExternalTool.RunChecked("qemu-io", "-c", "write -P 7 0 1M", baseImage);
        ExternalTool.RunChecked("qemu-img", "create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", link);
        ExternalTool.RunChecked("qemu-io", "-c", "write -P 9 2M 1M", link);
        File.Move(link, real);
        File.CreateSymbolicLink(link, "../big/d.qcow2");
        ExternalTool.RunChecked("qemu-img", "convert", "-O", "raw", link, flat);
        ExternalTool.RunChecked("qemu-img", "convert", "-O", "raw", baseImage, flatBase);

        async Task Step(string what, string expected, params string[] args)
        {
            var r = await CliRunner.RunAsync(args);
            Assert.True(r.ExitCode == 0, $"{what}: {r}");
            Assert.True(new FileInfo(link).LinkTarget == "../big/d.qcow2", $"{what}: the link was replaced");
            Assert.True(File.Exists(real), what);
            // qemu-img resolves the parent link from the link's folder, as before the rewrite.
            ExternalTool.RunChecked("qemu-img", "check", link);
            ExternalTool.RunChecked("qemu-img", "compare", "-F", "raw", link, expected);
            Assert.Empty(Directory.GetFiles(big, "*.dse-*"));
        }

        await Step("compact", flat, "compact", link);
        await Step("resize", flat, "resize", link, "--size", "3G");
        await Step("reset", flatBase, "reset", link);
    }
}
