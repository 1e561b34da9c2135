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

    /// <summary>
    /// Refusals of compact, resize and reset through a link name the link the user gave, not its target: a raw image
    /// (nothing to compact), a base image (nothing to reset to), and, for a user who may not write the target's folder,
    /// that folder. Nothing changes.
    /// </summary>
    [RootFact("runs dse as nobody, which only root can")]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public async Task Refusals_through_a_link_name_the_link()
    {
        using var dir = new TempDirectory("rewrite-link-refusal");
        string vms = Directory.CreateDirectory(dir.File("vms")).FullName, big = Directory.CreateDirectory(dir.File("big")).FullName;
        string real = Path.Combine(big, "d.img"), link = Path.Combine(vms, "d.img");
        File.WriteAllBytes(real, new byte[1 << 20]);
        File.CreateSymbolicLink(link, "../big/d.img");
        string before = ContentHash.OfFile(real);

        foreach (var args in new[] { new[] { "compact", link }, ["reset", link] })
        {
            var r = await CliRunner.RunAsync(args);
            Assert.True(r.ExitCode != 0, $"{args[0]}: {r}");
            Assert.Contains(link, r.StdErr);
            Assert.DoesNotContain(real, r.StdErr);
        }
        // The link's folder may be written by everyone; the target's folder by root only.
        File.SetUnixFileMode(dir.Path, (UnixFileMode)Convert.ToInt32("755", 8));
        File.SetUnixFileMode(vms, (UnixFileMode)Convert.ToInt32("777", 8));
        File.SetUnixFileMode(big, (UnixFileMode)Convert.ToInt32("755", 8));
        File.SetUnixFileMode(real, (UnixFileMode)Convert.ToInt32("666", 8));
        var (code, _, stderr) = CliRunner.RunAsNobody("compact", link);
        Assert.True(code == 15, stderr);
        Assert.Contains($"{link}", stderr);
        Assert.Contains($"its folder {big}", stderr);
        Assert.DoesNotContain(real, stderr);
        Assert.Equal(before, ContentHash.OfFile(real));
        Assert.True(new FileInfo(link).LinkTarget == "../big/d.img");
    }

    /// <summary>
    /// The new file of a rewrite through a link goes beside the link's target; when its folder refuses the create after
    /// the verb's check up front passed (a folder changed meanwhile, here made immutable before the create itself), the
    /// refusal names the file the user gave and the folder that refused: the target's, not the link's.
    /// </summary>
    [RootFact("makes a folder immutable (chattr +i)")]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public void A_refused_create_beside_a_links_target_names_the_targets_folder()
    {
        using var dir = new TempDirectory("rewrite-link-refused");
        string vms = Directory.CreateDirectory(dir.File("vms")).FullName, big = Directory.CreateDirectory(dir.File("big")).FullName;
        string real = Path.Combine(big, "d.qcow2"), link = Path.Combine(vms, "d.qcow2");
        File.WriteAllBytes(real, new byte[4096]);
        File.CreateSymbolicLink(link, "../big/d.qcow2");
        string temp = DiskSnapshotEngine.IO.FileNode.Target(link) + ".dse-tmp";
        ExternalTool.RunChecked("chattr", "+i", big);
        try
        {
            var e = Assert.Throws<DiskSnapshotEngine.Errors.DiskImageException>(() => DiskSnapshotEngine.IO.LockedOpen.Create(temp, named: link).Dispose());
            Assert.Equal(DiskSnapshotEngine.Errors.ErrorKind.ReadOnly, e.Kind);
            Assert.Equal(link, e.Path);
            Assert.Contains($"its folder {big} is not writable", e.Detail);
        }
        finally { ExternalTool.RunChecked("chattr", "-i", big); }
        Assert.False(File.Exists(temp));
    }
}
