using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Formats.Vhd;

/// <summary>
/// qemu-img's VHD (its "vpc" driver) against ours: images qemu makes read byte for byte as qemu reads them, with the size
/// taken from the footer's Current Size (qemu's force_size_calc=current_size); images we make read identically in qemu
/// (without options: our geometry tells it to use Current Size) and in 7-Zip. qemu-img check has no vpc support.
/// </summary>
public sealed class VhdQemuInteropTests
{
    private const int MiB = VhdTestKit.MiB;

    [RequiresToolTheory("qemu-img")]
    [InlineData("dynamic", true)]
    [InlineData("fixed", true)]
    [InlineData("dynamic", false)]
    [InlineData("fixed", false)]
    public void Images_qemu_makes_read_exactly_as_qemu_reads_them(string subformat, bool forceSize)
    {
        using var dir = new TempDirectory("vhd-qemu");
        // Not a whole number of 2 MiB blocks; without force_size qemu rounds the size up to a whole CHS geometry.
        const long size = 13L * MiB + 3 * 512;
        string raw = dir.File("src.raw"), vhd = dir.File("q.vhd"), back = dir.File("back.raw");
        VhdTestKit.WriteRaw(raw, size, 17);
        VhdTestKit.QemuConvert(raw, vhd, subformat, forceSize);
        VhdTestKit.QemuToRaw(vhd, back);

        using var chain = DiskImage.Open(vhd);
        Assert.Equal(ImageFormat.Vhd, chain.Top.Format);
        Assert.Equal(subformat == "fixed" ? ImageType.Fixed : ImageType.Dynamic, chain.Top.Type);
        Assert.Equal(new FileInfo(back).Length, chain.VirtualSize);
        if (forceSize) Assert.Equal(size, chain.VirtualSize);
        else Assert.True(chain.VirtualSize >= size, $"qemu rounds up, it never shrinks ({chain.VirtualSize})");
        Assert.Equal(ContentHash.OfFile(back), ContentHash.Of(chain));
        var report = chain.Check();
        // qemu's CHS-sized images carry a matching geometry: nothing to say about them either.
        Assert.True(report.IsClean, string.Join("\n", report.Problems));
    }

    [RequiresToolFact("qemu-img")]
    public void Unallocated_blocks_of_a_qemu_dynamic_image_are_zero_extents_that_clone_skips()
    {
        using var dir = new TempDirectory("vhd-qemu");
        string raw = dir.File("src.raw"), vhd = dir.File("q.vhd");
        using (var f = new FileStream(raw, FileMode.CreateNew, FileAccess.Write))
        {
            f.SetLength(16L * MiB);
            f.Position = 6L * MiB + 4096;
            f.Write(RandomData.Bytes(10000, 3));
        }
        VhdTestKit.QemuConvert(raw, vhd, "dynamic", forceSize: true);
        using var chain = DiskImage.Open(vhd);
        var data = chain.GetExtents(0, chain.VirtualSize).Where(e => e.Kind == ExtentKind.Data).ToList();
        // qemu allocates the one 2 MiB block the data falls in, with every sector bit set.
        Assert.Equal(new[] { (6L * MiB, 2L * MiB) }, data.Select(e => (e.Offset, e.Length)));
        Assert.Equal(ContentHash.OfFile(raw), ContentHash.Of(chain));
    }

    [RequiresToolTheory("qemu-img", "7zz")]
    [InlineData(ImageType.Dynamic)]
    [InlineData(ImageType.Fixed)]
    public void Images_we_make_read_identically_in_qemu_and_7zip(ImageType type)
    {
        using var dir = new TempDirectory("vhd-qemu");
        const long size = 21L * MiB + 8192;
        string vhd = dir.File("ours.vhd"), raw = dir.File("expected.raw");
        VhdTestKit.WriteRaw(raw, size, 29);
        using (var layer = VhdTestKit.Create(vhd, size, type))
        using (var chain = new DiskChain(new[] { layer }))
        {
            var buffer = new byte[MiB];
            using var src = File.OpenRead(raw);
            for (long at = 0; at < size; at += buffer.Length)
            {
                int n = (int)Math.Min(buffer.Length, size - at);
                src.ReadExactly(buffer, 0, n);
                // Unaligned pieces: the chain widens them to whole blocks over what the image shows (zeros here).
                chain.Write(at, buffer.AsSpan(0, n));
            }
        }

        // qemu, with no option: the maximum geometry in our footer tells it to take the size from Current Size.
        var info = ExternalTool.RunChecked("qemu-img", "info", "--output=json", "-f", "vpc", vhd);
        Assert.Contains($"\"virtual-size\": {size}", info);
        Assert.Contains("Images are identical", ExternalTool.RunChecked("qemu-img", "compare", "-f", "vpc", "-F", "raw", vhd, raw));
        var (code, _, err) = ExternalTool.Run("qemu-img", "check", "-f", "vpc", vhd);
        Assert.True(code == 0 || err.Contains("does not support checks"), err);

        // 7-Zip reads the VHD container and extracts the raw disk.
        Assert.Contains("Everything is Ok", ExternalTool.RunChecked("7zz", "t", vhd));
        string outDir = dir.File("x");
        ExternalTool.RunChecked("7zz", "x", "-y", $"-o{outDir}", vhd);
        var extracted = Directory.GetFiles(outDir).Single();
        Assert.Equal(ContentHash.OfFile(raw), ContentHash.OfFile(extracted));
    }

    [RequiresToolTheory("qemu-img")]
    [InlineData("fixed")]
    [InlineData("dynamic")]
    public void A_vhd_renamed_to_img_is_still_a_vhd_not_a_raw_disk(string subformat)
    {
        using var dir = new TempDirectory("vhd-qemu");
        string raw = dir.File("src.raw"), vhd = dir.File("q.vhd"), img = dir.File("renamed.img");
        VhdTestKit.WriteRaw(raw, 8L * MiB, 5);
        VhdTestKit.QemuConvert(raw, vhd, subformat, forceSize: true);
        File.Move(vhd, img);
        using var chain = DiskImage.Open(img);
        Assert.Equal(ImageFormat.Vhd, chain.Top.Format);
        Assert.Equal(8L * MiB, chain.VirtualSize);
        Assert.Equal(ContentHash.OfFile(raw), ContentHash.Of(chain));
    }
}
