using System.Text.Json;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Operations;
using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Operations;

/// <summary>
/// Differencing images whose size differs from their parent's: <c>dse resize</c> of a child (VHDX and qcow2, as
/// Hyper-V and qemu allow; VDI and VHD refused), chains qemu made that way read byte-exactly, and merge/pull over them.
/// </summary>
public class DifferencingResizeTests
{
    internal const long Size = 6L << 20;

    // A base of Size bytes full of data, and a child of it with a few writes: returns the child's model.
    internal static byte[] BaseAndChild(string folder, string ext, int seed)
    {
        string b = Path.Combine(folder, "base" + ext), c = Path.Combine(folder, "child" + ext);
        var model = new byte[Size];
        OpsKit.CreateBase(b, Size, ext == ".vhdx" ? 1 << 20 : null);
        using (var chain = DiskImage.Open(b, OpenOptions.ReadWrite))
        {
            var data = RandomData.Bytes((int)Size, seed);
            chain.Write(0, data);
            data.CopyTo(model, 0);
        }
        OpsKit.CreateChild(c, b);
        OpsKit.RandomWrites(c, new Random(seed), 5, model);
        return model;
    }

    // BaseAndChild with the child then grown to newSize by `dse resize`: returns the child's model at that size
    // (zeros past the parent's end).
    internal static async Task<byte[]> GrownChildAsync(string folder, string ext, int seed, long newSize)
    {
        var small = BaseAndChild(folder, ext, seed);
        var r = await CliRunner.RunAsync("resize", Path.Combine(folder, "child" + ext), "--size", newSize.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.True(r.ExitCode == 0, r.ToString());
        var model = new byte[newSize];
        small.CopyTo(model, 0);
        return model;
    }

    internal static void WriteAt(string image, long offset, byte[] data, byte[] model)
    {
        using var chain = DiskImage.Open(image, OpenOptions.ReadWrite);
        chain.Write(offset, data);
        data.CopyTo(model, offset);
    }

    [RequiresToolTheory("qemu-img")]
    [InlineData(".vhdx")]
    [InlineData(".qcow2")]
    public async Task A_child_grows_reads_zeros_past_its_parent_and_shrinks_only_over_no_visible_data(string ext)
    {
        using var dir = new TempDirectory("diff-resize");
        string child = dir.File("child" + ext), parent = dir.File("base" + ext);
        var small = BaseAndChild(dir.Path, ext, 31);
        var parentBytes = File.ReadAllBytes(parent);

        var grow = await CliRunner.RunAsync("resize", child, "--size", "10M", "--json");
        Assert.True(grow.ExitCode == 0, grow.ToString());
        using (var doc = JsonDocument.Parse(grow.StdOut)) Assert.True(doc.RootElement.GetProperty("inPlace").GetBoolean());
        var model = new byte[10L << 20];
        small.CopyTo(model, 0);
        OpsKit.AssertContent(model, child, "the grown child (zeros past the parent's end)");
        // Writes past the parent's end go to the child; the parent is unchanged.
        WriteAt(child, Size - 4096, RandomData.Bytes(3 << 20, 32), model);
        OpsKit.AssertContent(model, child, "the grown child after a write past the parent's end");
        Assert.Equal(parentBytes, File.ReadAllBytes(parent));
        Assert.Equal(0, (await CliRunner.RunAsync("check", child)).ExitCode);
        if (ext == ".qcow2") ExternalTool.RunChecked("qemu-img", "check", child);

        // The child's own data past 8M, then the parent's data past 5M, forbid those shrinks.
        var over = await CliRunner.RunAsync("resize", child, "--size", "8M", "--shrink");
        Assert.Equal(14, over.ExitCode);
        Assert.Contains("data lies at offset 8388608", over.StdErr);
        WriteAt(child, Size - 4096, new byte[3 << 20], model);
        var bytes = File.ReadAllBytes(child);
        var parentData = await CliRunner.RunAsync("resize", child, "--size", "5M", "--shrink");
        Assert.Equal(14, parentData.ExitCode);
        Assert.Contains("in the image or a parent it shows", parentData.StdErr);
        Assert.Equal(bytes, File.ReadAllBytes(child));

        // Zero data past 6M is no data the user would lose, but it is data: the shrink stops at the parent's end.
        var toParent = await CliRunner.RunAsync("resize", child, "--size", "6M", "--shrink");
        Assert.Equal(14, toParent.ExitCode);
        var raw = dir.File("expected.raw");
        File.WriteAllBytes(raw, model);
        var cmp = await CliRunner.RunAsync("compare", child, raw);
        Assert.True(cmp.ExitCode == 0, cmp.ToString());
    }

    [Theory]
    [InlineData(".vdi")]
    [InlineData(".vhd")]
    public async Task A_differencing_vdi_or_vhd_keeps_its_parents_size(string ext)
    {
        using var dir = new TempDirectory("diff-resize-refused");
        BaseAndChild(dir.Path, ext, 33);
        string child = dir.File("child" + ext);
        var bytes = File.ReadAllBytes(child);
        var r = await CliRunner.RunAsync("resize", child, "--size", "10M", "--json");
        Assert.Equal(5, r.ExitCode);
        Assert.Contains("keeps its parent's size", r.StdErr);
        Assert.Equal(bytes, File.ReadAllBytes(child));
    }

    /// <summary>
    /// libvhdi (vhdimount 20210425), a reader of Hyper-V's VHDX, on a differencing VHDX grown past its parent: it reads
    /// the parent's range and the child's own blocks past it exactly as dse does. (It fails reads of the child's
    /// unallocated range past the parent's end, where it asks the parent for bytes it does not have; dse reads zeros.)
    /// </summary>
    [RequiresFuseMountFact("vhdimount")]
    public async Task Vhdimount_reads_a_grown_vhdx_child_as_dse_does()
    {
        using var dir = new TempDirectory("diff-resize-vhdi");
        string child = dir.File("child.vhdx");
        var model = await GrownChildAsync(dir.Path, ".vhdx", 44, 10L << 20);
        WriteAt(child, 8L << 20, RandomData.Bytes(2 << 20, 45), model);
        OpsKit.AssertContent(model, child, "the grown child");
        using var mount = FuseMount.Mount("vhdimount", child, dir.File("mnt"));
        using var f = File.OpenRead(Path.Combine(mount.MountPoint, "vhdi2"));
        Assert.Equal(10L << 20, f.Length);
        foreach (var (at, length) in new[] { (0L, (int)Size), (8L << 20, 2 << 20) })
        {
            var theirs = new byte[length];
            f.Position = at;
            f.ReadExactly(theirs);
            Assert.Equal(-1, OpsKit.FirstDifference(model.AsSpan((int)at, length).ToArray(), theirs));
        }
    }

    /// <summary>qemu's own mixed-size chains: an overlay larger than its VHDX backing file, and one qemu-img resize grew.</summary>
    [RequiresToolFact("qemu-img")]
    public async Task Chains_qemu_makes_with_different_sizes_read_like_qemu_img_convert()
    {
        using var dir = new TempDirectory("diff-resize-qemu");
        string b = dir.File("base.vhdx"), big = dir.File("big.qcow2"), grown = dir.File("grown.qcow2");
        ExternalTool.RunChecked("qemu-img", "create", "-q", "-f", "vhdx", "-o", "subformat=dynamic", b, "4M");
        ExternalTool.RunChecked("qemu-io", "-f", "vhdx", "-c", "write -P 0x11 0 4M", b);
        ExternalTool.RunChecked("qemu-img", "create", "-q", "-f", "qcow2", "-b", b, "-F", "vhdx", big, "10M");
        ExternalTool.RunChecked("qemu-io", "-c", "write -P 0x33 3M 2M", "-c", "write -P 0x44 9M 512K", big);
        ExternalTool.RunChecked("qemu-img", "create", "-q", "-f", "qcow2", "-b", b, "-F", "vhdx", grown, "3M");
        ExternalTool.RunChecked("qemu-io", "-c", "write -P 0x55 1M 1M", grown);
        ExternalTool.RunChecked("qemu-img", "resize", "-q", grown, "7M");

        foreach (var image in new[] { big, grown })
        {
            string expected = image + ".qemu.raw", ours = image + ".dse.raw";
            ExternalTool.RunChecked("qemu-img", "convert", "-O", "raw", image, expected);
            var export = await CliRunner.RunAsync("export", image, ours);
            Assert.True(export.ExitCode == 0, export.ToString());
            Assert.Equal(-1, OpsKit.FirstDifference(File.ReadAllBytes(expected), File.ReadAllBytes(ours)));
        }
        // qemu zeroed [3M, 4M) of the grown overlay (the base would show there): no base byte past the overlay's old end.
        Assert.All(File.ReadAllBytes(grown + ".dse.raw").AsSpan(3 << 20, 1 << 20).ToArray(), x => Assert.Equal(0, x));
        // Past the base's end the map says no layer holds the range.
        var map = await CliRunner.RunAsync("map", big, "--json");
        Assert.True(map.ExitCode == 0, map.ToString());
        var last = JsonDocument.Parse(map.StdOut).RootElement.EnumerateArray().Last();
        Assert.Equal((9L << 20) + (512 << 10), last.GetProperty("offset").GetInt64());
        Assert.Equal("absent", last.GetProperty("kind").GetString());
        Assert.Equal(JsonValueKind.Null, last.GetProperty("layerIndex").ValueKind);
        var pastBase = JsonDocument.Parse(map.StdOut).RootElement.EnumerateArray().Single(e => e.GetProperty("offset").GetInt64() == 5L << 20);
        Assert.Equal("absent", pastBase.GetProperty("kind").GetString());
        Assert.Equal(4L << 20, pastBase.GetProperty("length").GetInt64());

        // dse resize of the qemu overlay: qemu sees the size and the same bytes.
        var r = await CliRunner.RunAsync("resize", big, "--size", "12M");
        Assert.True(r.ExitCode == 0, r.ToString());
        ExternalTool.RunChecked("qemu-img", "check", big);
        string after = dir.File("after.raw");
        var exportAfter = await CliRunner.RunAsync("export", big, after);
        Assert.True(exportAfter.ExitCode == 0, exportAfter.ToString());
        Assert.Equal(12L << 20, new FileInfo(after).Length);
        ExternalTool.RunChecked("qemu-img", "compare", "-F", "raw", big, after);
    }

    /// <summary>Detach and rebase of a child grown past its parent keep what it shows, past the parent's end included.</summary>
    [RequiresToolFact("qemu-img")]
    public async Task Detach_and_rebase_of_a_grown_child_keep_its_content()
    {
        using var dir = new TempDirectory("diff-resize-detach");
        string child = dir.File("child.vhdx"), other = dir.File("other.vhdx");
        var model = await GrownChildAsync(dir.Path, ".vhdx", 48, 9L << 20);
        WriteAt(child, (7L << 20) + 123, RandomData.Bytes(70_000, 49), model);
        // A new parent of another size (8 MiB, data everywhere): the child keeps its bytes, zeros past the old parent's end included.
        OpsKit.CreateBase(other, 8L << 20);
        using (var chain = DiskImage.Open(other, OpenOptions.ReadWrite)) chain.Write(0, RandomData.Bytes(8 << 20, 50));
        var rebase = await CliRunner.RunAsync("rebase", child, "--parent", other);
        Assert.True(rebase.ExitCode == 0, rebase.ToString());
        OpsKit.AssertContent(model, child, "the rebased child");
        var detach = await CliRunner.RunAsync("detach", child);
        Assert.True(detach.ExitCode == 0, detach.ToString());
        using (var layer = DiskImage.OpenLayer(child, false)) Assert.Null(layer.ParentLink);
        OpsKit.AssertContent(model, child, "the detached child");
        ExternalTool.RunChecked("qemu-img", "check", child);
    }

    [RequiresToolFact("qemu-img")]
    public async Task Growing_a_child_over_its_parents_data_is_refused_unchanged()
    {
        using var dir = new TempDirectory("diff-resize-reveal");
        string b = dir.File("base.qcow2"), small = dir.File("small.qcow2");
        ExternalTool.RunChecked("qemu-img", "create", "-q", "-f", "qcow2", b, "6M");
        ExternalTool.RunChecked("qemu-io", "-c", "write -P 0x66 4M 64K", b);
        ExternalTool.RunChecked("qemu-img", "create", "-q", "-f", "qcow2", "-b", b, "-F", "qcow2", small, "3M");
        var bytes = File.ReadAllBytes(small);
        var r = await CliRunner.RunAsync("resize", small, "--size", "6M");
        Assert.Equal(14, r.ExitCode);
        Assert.Contains("holds data at offset 4194304", r.StdErr);
        Assert.Equal(bytes, File.ReadAllBytes(small));
        // Up to that data the growth is allowed, and reads the parent's zeros.
        var ok = await CliRunner.RunAsync("resize", small, "--size", "4M");
        Assert.True(ok.ExitCode == 0, ok.ToString());
        ExternalTool.RunChecked("qemu-img", "check", small);
    }

    /// <summary>In-place resize of a differencing VHDX and qcow2, killed at every write: the old size or the new, the same data, sound.</summary>
    [Theory]
    [InlineData(".vhdx", 9L << 20)]
    [InlineData(".vhdx", 4L << 20)]
    [InlineData(".qcow2", 9L << 20)]
    public async Task A_child_resized_in_place_killed_at_any_write_keeps_a_sound_image(string ext, long newSize)
    {
        using var dir = new TempDirectory("diff-resize-crash");
        string seed = Path.Combine(dir.Path, "seed");
        Directory.CreateDirectory(seed);
        var model = BaseAndChild(seed, ext, 43);
        // Shrinking keeps only what lies before the new end: the parent's data there would block it, so zero the rest.
        if (newSize < Size)
        {
            using var chain = DiskImage.Open(Path.Combine(seed, "child" + ext), OpenOptions.ReadWrite);
            chain.WriteZeroes(newSize, Size - newSize);
            Array.Clear(model, (int)newSize, (int)(Size - newSize));
        }
        bool completed = false;
        for (int n = 0; !completed; n++)
        {
            Assert.True(n < 60, "resize never completed");
            string work = Path.Combine(dir.Path, $"run{n}");
            OpsKit.CopyFolder(seed, work);
            string child = Path.Combine(work, "child" + ext);
            completed = await OpsKit.ResizeCutAtAsync(child, model, Size, newSize, n);
            Directory.Delete(work, true);
        }
    }
}
