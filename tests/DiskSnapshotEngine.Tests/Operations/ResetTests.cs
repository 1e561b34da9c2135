using System.Text.Json;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Operations;
using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Operations;

/// <summary><c>dse reset CLONE</c>: a linked clone reads as its parent again, same path, disk id and parent link.</summary>
public class ResetTests
{
    private const long Size = 6L << 20;

    private static (string Base, string Clone, byte[] BaseModel) BaseAndClone(TempDirectory dir, string ext, int seed)
    {
        var rng = new Random(seed);
        var model = new byte[Size];
        OpsKit.CreateBase(dir.File("base" + ext), Size);
        OpsKit.RandomWrites(dir.File("base" + ext), rng, 6, model);
        var baseModel = (byte[])model.Clone();
        OpsKit.CreateChild(dir.File("clone" + ext), dir.File("base" + ext));
        OpsKit.RandomWrites(dir.File("clone" + ext), rng, 6, model);
        Assert.NotEqual(-1, OpsKit.FirstDifference(baseModel, OpsKit.ReadAll(dir.File("clone" + ext))));
        return (dir.File("base" + ext), dir.File("clone" + ext), baseModel);
    }

    [Theory]
    [InlineData(".vhdx")]
    [InlineData(".vdi")]
    [InlineData(".qcow2")]
    [InlineData(".vhd")]
    public async Task Reset_discards_the_clones_writes_and_keeps_its_id_and_parent(string ext)
    {
        using var dir = new TempDirectory("reset");
        var (basePath, clone, baseModel) = BaseAndClone(dir, ext, 61);
        Guid id;
        using (var l = DiskImage.OpenLayer(clone, false)) id = l.Identity.Id;
        long before = new FileInfo(clone).Length;

        var r = await CliRunner.RunAsync("reset", clone, "--json");
        Assert.True(r.ExitCode == 0, r.ToString());
        using (var doc = JsonDocument.Parse(r.StdOut))
        {
            Assert.Equal(clone, doc.RootElement.GetProperty("image").GetString());
            Assert.Equal(basePath, doc.RootElement.GetProperty("parent").GetProperty("image").GetString());
            Assert.Equal(before, doc.RootElement.GetProperty("sizeBefore").GetInt64());
        }
        Assert.True(new FileInfo(clone).Length < before, "the discarded writes no longer take space");
        OpsKit.AssertContent(baseModel, clone, "the reset clone");
        using (var chain = DiskImage.Open(clone))
        {
            Assert.Equal(id, chain.Top.Identity.Id);
            Assert.Equal(basePath, chain.Layers[1].Path);
            Assert.True(chain.Check().IsClean);
        }
        Assert.False(File.Exists(clone + Reset.TempSuffix));
        // Still a working clone: writes land in it, never in the base.
        OpsKit.RandomWrites(clone, new Random(62), 2, (byte[])baseModel.Clone());
        OpsKit.AssertContent(baseModel, basePath, "the base after writes into the reset clone");
        // qemu reads qcow2 children (not differencing VHDX, VDI or VHD: it reads their unallocated blocks as zeros).
        if (ext == ".qcow2" && ExternalTool.Has("qemu-img"))
        {
            var reset = await CliRunner.RunAsync("reset", clone);
            Assert.Equal(0, reset.ExitCode);
            ExternalTool.RunChecked("qemu-img", "compare", clone, basePath);
            if (ext == ".qcow2") ExternalTool.RunChecked("qemu-img", "check", clone);
        }
    }

    [Theory]
    [InlineData(".vhdx")]
    [InlineData(".vdi")]
    public async Task Reset_refuses_a_base_image_and_a_clone_with_children_and_changes_nothing(string ext)
    {
        using var dir = new TempDirectory("reset-refuse");
        var (basePath, clone, _) = BaseAndClone(dir, ext, 64);
        var baseBytes = File.ReadAllBytes(basePath);
        var r = await CliRunner.RunAsync("reset", basePath);
        Assert.Equal(14, r.ExitCode);
        Assert.Contains("no parent", r.StdErr);
        Assert.Equal(baseBytes, File.ReadAllBytes(basePath));

        OpsKit.CreateChild(dir.File("kid" + ext), clone);
        await OpsKit.AssertRefusedForChildAsync(clone, dir.File("kid" + ext), "reset", clone);
        Assert.False(File.Exists(clone + Reset.TempSuffix));
    }

    /// <summary>
    /// A VHDX child holding a region dse does not know (MS-VHDX 2.2.3.2: kept by an implementation that does not know it):
    /// the reset's new file would not carry it, so reset refuses as compact does (same kind, same message), file unchanged.
    /// </summary>
    [Fact]
    public async Task Reset_refuses_a_vhdx_child_with_a_region_it_would_drop_as_compact_does()
    {
        using var dir = new TempDirectory("reset-region");
        var (_, clone, _) = BaseAndClone(dir, ".vhdx", 65);
        var (offset, id) = Formats.Vhdx.VhdxBatGrowthSafetyTests.AddUnknownRegion(clone);
        var before = File.ReadAllBytes(clone);
        var reset = await CliRunner.RunAsync("reset", clone);
        Assert.True(reset.ExitCode == DiskSnapshotEngine.Cli.ExitCodes.ForKind(ErrorKind.Unsupported), reset.ToString());
        Assert.Equal(before, File.ReadAllBytes(clone));
        Assert.False(File.Exists(clone + Reset.TempSuffix));
        var compact = await CliRunner.RunAsync("compact", clone);
        Assert.True(compact.ExitCode == reset.ExitCode, compact.ToString());
        string dropped = $"which would drop the region {{{id}}} at file offset {offset}";
        Assert.Contains($"reset rewrites the image into a new file, {dropped}", reset.StdErr);
        Assert.Contains($"compact rewrites the image into a new file, {dropped}", compact.StdErr);
        Assert.Equal(before, File.ReadAllBytes(clone));
    }

    /// <summary>
    /// Killed at any point: the new empty clone is written only under the temporary name, so no write ever reaches the
    /// clone or its parent in place (a kill at the first one would throw); the one change in place is the atomic rename.
    /// A stale temporary file from a killed run is replaced by the next run.
    /// </summary>
    [Theory]
    [InlineData(".vhdx")]
    [InlineData(".vdi")]
    public void Reset_writes_nothing_in_place_and_replaces_a_stale_temporary_file(string ext)
    {
        using var dir = new TempDirectory("reset-crash");
        var (_, clone, baseModel) = BaseAndClone(dir, ext, 65);
        File.WriteAllText(clone + Reset.TempSuffix, "stale");
        var plan = new CrashPlan { CrashAtWrite = 0 };
        Reset.Run(clone, OpenOptions.ReadOnly with { FileOpener = plan.Opener });
        Assert.Equal(0, plan.Writes);
        Assert.False(plan.Crashed);
        OpsKit.AssertContent(baseModel, clone, "after reset");
        Assert.False(File.Exists(clone + Reset.TempSuffix));
    }
    /// <summary>A sealed clone (clones elsewhere may read through it) is refused like a write (exit 15), file unchanged.</summary>
    [Theory]
    [InlineData(".vhdx")]
    [InlineData(".vdi")]
    [InlineData(".qcow2")]
    public async Task Reset_refuses_a_sealed_clone_and_changes_nothing(string ext)
    {
        using var dir = new TempDirectory("reset-sealed");
        var (_, clone, _) = BaseAndClone(dir, ext, 66);
        Assert.Equal(0, (await CliRunner.RunAsync("seal", clone)).ExitCode);
        var bytes = File.ReadAllBytes(clone);
        var r = await CliRunner.RunAsync("reset", clone);
        Assert.True(r.ExitCode == 15, r.ToString());
        Assert.Contains("sealed", r.StdErr);
        Assert.Equal(bytes, File.ReadAllBytes(clone));
        Assert.False(File.Exists(clone + Reset.TempSuffix));
    }

    /// <summary>
    /// A qcow2 clone has no disk id; its parent's seal records dse's own id of it. The reset clone keeps that id, so
    /// merging it back still needs no unseal (as for VHDX and VDI, whose disk id reset keeps).
    /// </summary>
    [Theory]
    [InlineData(".qcow2")]
    [InlineData(".vhdx")]
    public async Task Reset_keeps_the_clone_its_parents_sole_clone(string ext)
    {
        using var dir = new TempDirectory("reset-sole");
        string basePath = dir.File("base" + ext), clone = dir.File("clone" + ext);
        OpsKit.CreateBase(basePath, Size);
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(basePath, UnixFileMode.UserRead | UnixFileMode.UserWrite); // private: its sole clone is trusted
        Assert.Equal(0, (await CliRunner.RunAsync("create", clone, "--parent", basePath)).ExitCode);
        Assert.Equal(0, (await CliRunner.RunAsync("reset", clone)).ExitCode);
        using (var parent = DiskImage.OpenLayer(basePath, false))
        using (var child = DiskImage.OpenLayer(clone, false))
            Assert.True(DiskSnapshotEngine.Block.Seals.IsSoleChild(parent, child), "the parent's seal still records the reset clone");
        var merge = await CliRunner.RunAsync("merge", clone);
        Assert.True(merge.ExitCode == 0, merge.ToString());
    }
}
