using System.Text.Json;
using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Operations;
using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Operations;

/// <summary><c>dse set-identity IMAGE --new</c>: a cp copy gets its own disk id, content and links unchanged.</summary>
public class SetIdentityTests
{
    private const long Size = 6L << 20;

    private static byte[] BaseWithData(string path, int seed)
    {
        var model = new byte[Size];
        OpsKit.CreateBase(path, Size);
        OpsKit.RandomWrites(path, new Random(seed), 6, model);
        return model;
    }

    private static ImageIdentity IdentityOf(string path)
    {
        using var l = DiskImage.OpenLayer(path, false);
        return l.Identity;
    }

    [RequiresToolTheory("qemu-img")]
    [InlineData(".vhdx")]
    [InlineData(".vdi")]
    [InlineData(".vhd")]
    public async Task A_cp_copy_gets_a_new_id_and_both_then_carry_linked_clones_side_by_side(string ext)
    {
        using var dir = new TempDirectory("set-id");
        string original = dir.File("orig" + ext), copy = dir.File("copy" + ext);
        var model = BaseWithData(original, 71);
        OpsKit.CreateChild(dir.File("orig-clone" + ext), original);
        File.Copy(original, copy);

        var r = await CliRunner.RunAsync("set-identity", copy, "--new", "--json");
        Assert.True(r.ExitCode == 0, r.ToString());
        var before = IdentityOf(original);
        var after = IdentityOf(copy);
        using (var doc = JsonDocument.Parse(r.StdOut))
        {
            Assert.Equal(before.Id, doc.RootElement.GetProperty("oldId").GetGuid());
            Assert.Equal(after.Id, doc.RootElement.GetProperty("newId").GetGuid());
        }
        Assert.NotEqual(before.Id, after.Id);
        Assert.NotEqual(before.Version, after.Version);
        OpsKit.AssertContent(model, copy, "the copy with a new identity");
        using (var c = DiskImage.Open(copy)) Assert.True(c.Check().IsClean, string.Join("; ", c.Check().Problems));
        if (ext != ".vhd") ExternalTool.RunChecked("qemu-img", "check", copy); // qemu-img cannot check VHD
        ExternalTool.RunChecked("qemu-img", "compare", copy, original);

        // A clone of each: the copy's clone links to the copy, the original's clone still to the original.
        OpsKit.CreateChild(dir.File("copy-clone" + ext), copy);
        using (var c = DiskImage.Open(dir.File("copy-clone" + ext))) Assert.Equal(copy, c.Layers[1].Path);
        using (var c = DiskImage.Open(dir.File("orig-clone" + ext))) { Assert.Equal(original, c.Layers[1].Path); Assert.True(c.Check().IsClean); }
        OpsKit.AssertContent(model, dir.File("orig-clone" + ext), "the original's clone");
    }

    [Theory]
    [InlineData(".vhdx")]
    [InlineData(".vdi")]
    public async Task An_image_with_children_is_refused_naming_them_and_unchanged(string ext)
    {
        using var dir = new TempDirectory("set-id-refuse");
        string img = dir.File("img" + ext);
        BaseWithData(img, 72);
        OpsKit.CreateChild(dir.File("kid" + ext), img);
        await OpsKit.AssertRefusedForChildAsync(img, dir.File("kid" + ext), "set-identity", img, "--new");

        var usage = await CliRunner.RunAsync("set-identity", img);
        Assert.Equal(2, usage.ExitCode);
    }

    [Theory]
    [InlineData(".qcow2", "no disk id")]
    [InlineData(".img", "no disk id")]
    public async Task Other_formats_are_unsupported_and_unchanged(string ext, string says)
    {
        using var dir = new TempDirectory("set-id-unsupported");
        string img = dir.File("img" + ext);
        BaseWithData(img, 73);
        var bytes = File.ReadAllBytes(img);
        var r = await CliRunner.RunAsync("set-identity", img, "--new");
        Assert.Equal(5, r.ExitCode);
        Assert.Contains(says, r.StdErr);
        Assert.Equal(bytes, File.ReadAllBytes(img));
    }

    /// <summary>Killed at every write: the image keeps its content and is sound, with the old id or the new one.</summary>
    [Theory]
    [InlineData(".vhdx")]
    [InlineData(".vdi")]
    [InlineData(".vhd")]
    public void Set_identity_killed_at_any_write_leaves_a_sound_image(string ext)
    {
        using var dir = new TempDirectory("set-id-crash");
        string master = dir.File("master" + ext), img = dir.File("img" + ext);
        var model = BaseWithData(master, 74);
        var old = IdentityOf(master).Id;
        bool completed = false;
        for (int n = 0; n < 64 && !completed; n++)
        {
            File.Copy(master, img, overwrite: true);
            var plan = new CrashPlan { CrashAtWrite = n };
            try { SetIdentity.NewId(img, OpenOptions.ReadOnly with { FileOpener = plan.Opener }); completed = true; }
            catch (DiskImageException e) when (plan.Crashed && e.Kind == ErrorKind.Io) { }
            OpsKit.AssertContent(model, img, $"after a kill at write {n}");
            using var chain = DiskImage.Open(img);
            var report = chain.Check();
            Assert.False(report.HasErrors, $"check after a kill at write {n}: {string.Join("; ", report.Problems)}");
            if (completed) Assert.NotEqual(old, chain.Top.Identity.Id);
        }
        Assert.True(completed, "set-identity never completed within 64 writes");
    }
}
