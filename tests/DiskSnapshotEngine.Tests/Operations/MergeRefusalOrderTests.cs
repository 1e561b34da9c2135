using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Operations;

/// <summary>
/// Which refusal a merge gives when several apply: a target this user cannot write is named first (the user must first
/// get write access, or merge elsewhere, before other images depending on it matter), then the images depending on it.
/// Run as nobody, a lab user merging a clone of root's golden.
/// </summary>
public class MergeRefusalOrderTests
{
    [RootFact("runs dse as nobody through setpriv")]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public async Task A_target_the_user_cannot_write_is_refused_before_the_images_that_depend_on_it()
    {
        using var dir = new TempDirectory("merge-refusal-order");
        File.SetUnixFileMode(dir.Path, (UnixFileMode)0x1ED); // 0755, root's
        string golden = dir.File("golden.qcow2"), other = dir.File("other.qcow2"), home = dir.File("home"), clone = Path.Combine(home, "c.qcow2");
        await CliRunner.OkAsync("create", golden, "--size", "16M");
        Directory.CreateDirectory(home);
        ExternalTool.RunChecked("chown", "65534:65534", home);
        var made = CliRunner.RunAsNobody("clone", "--linked", golden, clone);
        Assert.True(made.ExitCode == 0, $"clone --linked as nobody: {made}");
        // Root's own child of the golden, made by qemu-img (which leaves the golden unsealed): an image that depends on the target.
        ExternalTool.RunChecked("qemu-img", "create", "-q", "-f", "qcow2", "-b", golden, "-F", "qcow2", other);
        string goldenHash = ContentHash.OfFile(golden), cloneHash = ContentHash.OfFile(clone);

        // Both apply: the one the user can act on first comes first.
        var (code, _, stderr) = CliRunner.RunAsNobody("merge", clone);
        Assert.True(code == 15, $"exit {code}: {stderr}");
        Assert.Contains($"{golden}: cannot merge into it: its owner root and mode 0644 do not let this user write it", stderr);
        Assert.DoesNotContain("depend", stderr);
        Assert.Equal([clone], Directory.GetFiles(home));
        Assert.Equal(goldenHash, ContentHash.OfFile(golden));

        // Once this user may write the golden, the images depending on it stop the merge.
        File.SetUnixFileMode(golden, (UnixFileMode)0x1B6); // 0666
        (code, _, stderr) = CliRunner.RunAsNobody("merge", clone);
        Assert.True(code == 15, $"exit {code}: {stderr}");
        Assert.Contains($"cannot merge: other images depend on layers that would change or disappear: {other} (child of {golden})", stderr);
        Assert.Equal([clone], Directory.GetFiles(home));
        Assert.Equal(goldenHash, ContentHash.OfFile(golden));
        Assert.Equal(cloneHash, ContentHash.OfFile(clone));
    }
}
