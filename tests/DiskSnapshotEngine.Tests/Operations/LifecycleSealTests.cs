using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Operations;

/// <summary>
/// The seal and the in-place lifecycle verbs: a sealed image refuses a new identity and a resize (children elsewhere
/// may read through it) and is left byte for byte unchanged; detaching a child of a sealed parent only reads the parent.
/// </summary>
public class LifecycleSealTests
{
    private const long Size = 4L << 20;

    [Theory]
    [InlineData(".vhdx", "set-identity", "--new")]
    [InlineData(".vhdx", "resize", "--size=8M")]
    [InlineData(".vdi", "set-identity", "--new")]
    [InlineData(".vdi", "resize", "--size=8M")]
    public async Task A_sealed_image_is_refused_unchanged_until_unsealed(string ext, string verb, string arg)
    {
        using var dir = new TempDirectory("seal-life");
        string img = dir.File("golden" + ext);
        var model = new byte[Size];
        OpsKit.CreateBase(img, Size);
        OpsKit.RandomWrites(img, new Random(61), 4, model);
        var seal = await CliRunner.RunAsync("seal", img);
        Assert.True(seal.ExitCode == 0, seal.ToString());
        var bytes = File.ReadAllBytes(img);

        var refused = await CliRunner.RunAsync(verb, img, arg);
        Assert.Equal(15, refused.ExitCode);
        Assert.Contains("sealed", refused.StdErr);
        Assert.Contains("dse unseal", refused.StdErr);
        Assert.Equal(bytes, File.ReadAllBytes(img));

        Assert.Equal(0, (await CliRunner.RunAsync("unseal", img)).ExitCode);
        var ok = await CliRunner.RunAsync(verb, img, arg);
        Assert.True(ok.ExitCode == 0, ok.ToString());
        using var chain = DiskImage.Open(img);
        var content = new byte[Size];
        chain.Read(0, content);
        Assert.Equal(-1, OpsKit.FirstDifference(model, content));
    }

    [RequiresToolTheory("qemu-img")]
    [InlineData(".vhdx")]
    [InlineData(".vdi")]
    public async Task Detaching_a_child_of_a_sealed_parent_leaves_the_parent_unchanged(string ext)
    {
        using var dir = new TempDirectory("seal-detach");
        string golden = dir.File("golden" + ext), clone = dir.File("clone" + ext);
        var model = new byte[Size];
        OpsKit.CreateBase(golden, Size);
        OpsKit.RandomWrites(golden, new Random(62), 4, model);
        var create = await CliRunner.RunAsync("create", clone, "--parent", golden);
        Assert.True(create.ExitCode == 0, create.ToString());
        OpsKit.RandomWrites(clone, new Random(63), 4, model);
        using (var g = DiskImage.OpenLayer(golden, false)) Assert.NotEqual(SealReasons.None, Seals.Of(g));
        var goldenBytes = File.ReadAllBytes(golden);

        var r = await CliRunner.RunAsync("detach", clone);
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Equal(goldenBytes, File.ReadAllBytes(golden));
        OpsKit.AssertContent(model, clone, "the detached clone");
        using (var c = DiskImage.Open(clone)) Assert.Single(c.Layers);
        ExternalTool.RunChecked("qemu-img", "check", clone);
        var raw = dir.File("expected.raw");
        File.WriteAllBytes(raw, model);
        ExternalTool.RunChecked("qemu-img", "compare", "-F", "raw", clone, raw);
    }
}
