using System.Text.Json;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Operations;
using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Operations;

/// <summary><c>dse resize IMAGE --size S [--shrink]</c>: identity and content kept, checked with qemu-img.</summary>
public class ResizeTests
{
    private const long Size = 6L << 20;

    private static byte[] BaseWithData(string path, int seed, long dataLimit = Size)
    {
        var model = new byte[Size];
        OpsKit.CreateBase(path, Size, path.EndsWith(".vhdx", StringComparison.Ordinal) ? 1 << 20 : null);
        var rng = new Random(seed);
        using var chain = DiskImage.Open(path, OpenOptions.ReadWrite);
        for (int i = 0; i < 6; i++)
        {
            var data = new byte[rng.Next(1, 200_000)];
            rng.NextBytes(data);
            long off = rng.NextInt64(0, dataLimit - data.Length);
            chain.Write(off, data);
            data.CopyTo(model, off);
        }
        chain.Flush();
        return model;
    }

    private static long QemuVirtualSize(string path)
    {
        using var doc = JsonDocument.Parse(ExternalTool.RunChecked("qemu-img", "info", "--output=json", path));
        return doc.RootElement.GetProperty("virtual-size").GetInt64();
    }

    [RequiresToolTheory("qemu-img")]
    [InlineData(".vhdx")]
    [InlineData(".vdi")]
    [InlineData(".qcow2")]
    [InlineData(".vhd")]
    [InlineData(".img")]
    public async Task Grow_keeps_identity_and_content_and_qemu_sees_the_new_size(string ext)
    {
        using var dir = new TempDirectory("resize-grow");
        string img = dir.File("disk" + ext);
        var model = BaseWithData(img, 91);
        Guid id;
        using (var l = DiskImage.OpenLayer(img, false)) id = l.Identity.Id;

        var r = await CliRunner.RunAsync("resize", img, "--size", "10M", "--json");
        Assert.True(r.ExitCode == 0, r.ToString());
        using (var doc = JsonDocument.Parse(r.StdOut))
        {
            Assert.Equal(Size, doc.RootElement.GetProperty("oldSize").GetInt64());
            Assert.Equal(10L << 20, doc.RootElement.GetProperty("newSize").GetInt64());
            // VHDX: the BAT region has room, so only the size item and BAT entries change, through the log; qcow2:
            // the L1 table's cluster has room, so only size and l1_size change.
            if (ext is ".vhdx" or ".qcow2" or ".img") Assert.True(doc.RootElement.GetProperty("inPlace").GetBoolean());
        }
        var grown = new byte[10L << 20];
        model.CopyTo(grown, 0);
        OpsKit.AssertContent(grown, img, "the grown disk");
        using (var chain = DiskImage.Open(img))
        {
            Assert.Equal(10L << 20, chain.VirtualSize);
            Assert.Equal(id, chain.Top.Identity.Id);
            Assert.True(chain.Check().IsClean, string.Join("; ", chain.Check().Problems));
        }
        if (ext != ".vhd") Assert.Equal(10L << 20, QemuVirtualSize(img));
        if (ext is not (".vhd" or ".img")) ExternalTool.RunChecked("qemu-img", "check", img);
        var raw = dir.File("expected.raw");
        File.WriteAllBytes(raw, grown);
        if (ext != ".vhd") ExternalTool.RunChecked("qemu-img", "compare", "-F", "raw", img, raw);
    }

    [RequiresToolTheory("qemu-img")]
    [InlineData(".vhdx")]
    [InlineData(".vdi")]
    [InlineData(".qcow2")]
    [InlineData(".img")]
    public async Task Shrink_needs_the_flag_and_no_data_past_the_new_end(string ext)
    {
        using var dir = new TempDirectory("resize-shrink");
        string img = dir.File("disk" + ext);
        var model = BaseWithData(img, 92, dataLimit: 1L << 20);
        Array.Clear(model, 1 << 20, model.Length - (1 << 20));
        var bytes = File.ReadAllBytes(img);

        var noFlag = await CliRunner.RunAsync("resize", img, "--size", "2M");
        Assert.Equal(14, noFlag.ExitCode);
        Assert.Contains("--shrink", noFlag.StdErr);
        var tooSmall = await CliRunner.RunAsync("resize", img, "--size", "512K", "--shrink");
        Assert.Equal(14, tooSmall.ExitCode);
        Assert.Contains("data lies at offset", tooSmall.StdErr);
        Assert.Equal(bytes, File.ReadAllBytes(img));

        var info = await CliRunner.RunAsync("info", img, "--json");
        long min = JsonDocument.Parse(info.StdOut).RootElement.GetProperty("minimumSize").GetInt64();
        Assert.InRange(min, 1, 1L << 20);
        Assert.Contains($"cannot shrink below {min} bytes", tooSmall.StdErr);

        var ok = await CliRunner.RunAsync("resize", img, "--size", "2M", "--shrink", "--json");
        Assert.True(ok.ExitCode == 0, ok.ToString());
        if (ext is ".vhdx" or ".img")
            using (var doc = JsonDocument.Parse(ok.StdOut)) Assert.True(doc.RootElement.GetProperty("inPlace").GetBoolean());
        OpsKit.AssertContent(model[..(2 << 20)], img, "the shrunk disk");
        Assert.Equal(2L << 20, QemuVirtualSize(img));
        if (ext != ".img") ExternalTool.RunChecked("qemu-img", "check", img);
    }

    [Theory]
    [InlineData(".vhdx")]
    [InlineData(".vdi")]
    public async Task A_child_and_an_image_with_children_are_refused_unchanged(string ext)
    {
        using var dir = new TempDirectory("resize-refuse");
        string img = dir.File("disk" + ext);
        BaseWithData(img, 93);
        OpsKit.CreateChild(dir.File("kid" + ext), img);
        await OpsKit.AssertRefusedForChildAsync(img, dir.File("kid" + ext), "resize", img, "--size", "10M");
        // A differencing VDI keeps its parent's size (VirtualBox fails reads past a parent's end); a VHDX child resizes
        // (DifferencingResizeTests).
        if (ext == ".vdi")
        {
            var kid = File.ReadAllBytes(dir.File("kid" + ext));
            var child = await CliRunner.RunAsync("resize", dir.File("kid" + ext), "--size", "10M");
            Assert.Equal(5, child.ExitCode);
            Assert.Contains("VirtualBox", child.StdErr);
            Assert.Equal(kid, File.ReadAllBytes(dir.File("kid" + ext)));
        }
    }

    /// <summary>VDI growth in place, killed at every write: the old size or the new, the same data, a sound image.</summary>
    [Theory]
    [InlineData(".vdi", 12L << 20)]
    [InlineData(".vhdx", 12L << 20)]
    [InlineData(".vhdx", 3L << 20)]
    [InlineData(".qcow2", 12L << 20)]
    public async Task Resize_in_place_killed_at_any_write_keeps_a_sound_image(string ext, long newSize)
    {
        using var dir = new TempDirectory("resize-crash");
        string master = dir.File("master" + ext), img = dir.File("disk" + ext);
        var model = BaseWithData(master, 94, dataLimit: 3L << 20);
        bool completed = false;
        for (int n = 0; !completed; n++)
        {
            Assert.True(n < 50, "resize never completed");
            File.Copy(master, img, overwrite: true);
            completed = await OpsKit.ResizeCutAtAsync(img, model, Size, newSize, n);
        }
    }

    [RequiresToolTheory("qemu-img")]
    [InlineData(".vdi")] // a VHDX grows in place past its BAT region's room (VhdxBatGrowthTests)
    public async Task Growth_past_the_block_maps_room_rewrites_and_keeps_the_identity(string ext)
    {
        using var dir = new TempDirectory("resize-big");
        string img = dir.File("disk" + ext);
        var model = BaseWithData(img, 95);
        Guid id;
        using (var l = DiskImage.OpenLayer(img, false)) id = l.Identity.Id;
        var r = await Resize.RunAsync(img, 300L << 30, false);
        Assert.False(r.InPlace);
        Assert.Equal(300L << 30, QemuVirtualSize(img));
        ExternalTool.RunChecked("qemu-img", "check", img);
        using var chain = DiskImage.Open(img);
        Assert.Equal(id, chain.Top.Identity.Id);
        var head = new byte[Size];
        chain.Read(0, head);
        Assert.Equal(-1, OpsKit.FirstDifference(model, head));
    }

    /// <summary>
    /// A base image's minimum size (what info shows and resize --shrink accepts) is the end of its last data in whole
    /// sectors: everything past it reads as zeros, one sector less is refused naming it, and the minimum itself is taken.
    /// </summary>
    [Theory]
    [InlineData(".vhdx")]
    [InlineData(".vdi")]
    [InlineData(".qcow2")]
    [InlineData(".vhd")]
    [InlineData(".img")]
    public async Task A_base_shrinks_to_its_minimum_size_and_not_below(string ext)
    {
        using var dir = new TempDirectory("resize-minimum");
        string path = dir.File("disk" + ext);
        var model = BaseWithData(path, 77, dataLimit: 4L << 20);
        long minimum;
        using (var layer = DiskImage.OpenLayer(path, writable: false))
        {
            minimum = Resize.MinimumSize(layer);
            using var chain = DiskImage.Open(path);
            Assert.Equal(Resize.MinimumSize(chain), minimum);
        }
        Assert.True(minimum > 0 && minimum % 512 == 0 && minimum < Size, $"minimum {minimum}");
        Assert.True(model.AsSpan((int)minimum).IndexOfAnyExcept((byte)0) < 0, $"data past the minimum {minimum}");
        var bytes = File.ReadAllBytes(path);
        var under = await CliRunner.RunAsync("resize", path, "--size", (minimum - 512).ToString(), "--shrink");
        Assert.True(under.ExitCode == 14, under.ToString());
        Assert.Contains($"cannot shrink below {minimum} bytes", under.StdErr);
        Assert.Equal(bytes, File.ReadAllBytes(path));
        await CliRunner.OkAsync("resize", path, "--size", minimum.ToString(), "--shrink");
        OpsKit.AssertContent(model.AsSpan(0, (int)minimum).ToArray(), path, "the disk shrunk to its minimum size");
    }
}
