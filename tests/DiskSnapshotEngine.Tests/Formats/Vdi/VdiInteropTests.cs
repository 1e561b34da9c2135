using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Formats.Vdi;

/// <summary>Our VDI files against qemu-img and qemu-io, and theirs against us.</summary>
public sealed class VdiInteropTests
{
    private const long GiB = 1L << 30;

    /// <summary>
    /// Acceptance: a 1 GiB image, 257 MiB written in scattered 1 MiB runs (most not block-aligned, so copy-on-write
    /// fills the rest of each new block) plus one unaligned 777-byte run; the same writes go into a sparse raw file.
    /// </summary>
    private static void WriteScattered(string vdiPath, string rawPath)
    {
        var rng = new Random(257);
        var run = new byte[VdiTestKit.MiB];
        using var raw = new FileStream(rawPath, FileMode.CreateNew, FileAccess.ReadWrite);
        raw.SetLength(GiB);
        using (var chain = DiskImage.Open(vdiPath, OpenOptions.ReadWrite))
        {
            for (int i = 0; i < 257; i++)
            {
                rng.NextBytes(run);
                long at = i % 4 == 0
                    ? rng.NextInt64(GiB / VdiTestKit.MiB) * VdiTestKit.MiB          // block-aligned
                    : rng.NextInt64(GiB - run.Length);                               // any byte offset
                chain.Write(at, run);
                raw.Position = at;
                raw.Write(run);
            }
            var odd = RandomData.Bytes(777, 777);
            long oddAt = 3 * VdiTestKit.MiB * 100 + 12345;
            chain.Write(oddAt, odd);
            raw.Position = oddAt;
            raw.Write(odd);
        }
    }

    [RequiresToolFact("qemu-img")]
    public void Dynamic_1GiB_with_257MiB_written_passes_qemu_check_and_compares_identical()
    {
        using var dir = new TempDirectory("vdi-interop");
        string vdi = dir.File("dyn.vdi"), raw = dir.File("expected.raw");
        using (VdiTestKit.CreateVdi(vdi, GiB)) { }
        WriteScattered(vdi, raw);
        ExternalTool.RunChecked("qemu-img", "check", "-f", "vdi", vdi);
        var cmp = ExternalTool.RunChecked("qemu-img", "compare", "-f", "vdi", "-F", "raw", vdi, raw);
        Assert.Contains("Images are identical", cmp);
        // Only what was written is allocated: the file stays far below the virtual size.
        Assert.InRange(new FileInfo(vdi).Length, 257L * VdiTestKit.MiB, 600L * VdiTestKit.MiB);
    }

    [RequiresToolFact("qemu-img")]
    public void Fixed_1GiB_with_257MiB_written_passes_qemu_check_and_compares_identical()
    {
        using var dir = new TempDirectory("vdi-interop");
        string vdi = dir.File("fixed.vdi"), raw = dir.File("expected.raw");
        using (var layer = VdiTestKit.CreateVdi(vdi, GiB, ImageType.Fixed))
            Assert.Equal(ImageType.Fixed, layer.Type);
        long lengthBefore = new FileInfo(vdi).Length;
        WriteScattered(vdi, raw);
        Assert.Equal(lengthBefore, new FileInfo(vdi).Length); // a fixed image never grows
        ExternalTool.RunChecked("qemu-img", "check", "-f", "vdi", vdi);
        var info = ExternalTool.RunChecked("qemu-img", "info", "-f", "vdi", vdi);
        Assert.Contains("1 GiB", info);
        var cmp = ExternalTool.RunChecked("qemu-img", "compare", "-f", "vdi", "-F", "raw", vdi, raw);
        Assert.Contains("Images are identical", cmp);
    }

    [RequiresToolFact("qemu-img")]
    public void Images_converted_by_qemu_img_read_byte_exactly_dynamic_and_static()
    {
        using var dir = new TempDirectory("vdi-interop");
        string raw = dir.File("src.raw");
        const long size = 24L * VdiTestKit.MiB + 512 * 3;  // not a whole number of blocks: a short last block
        using (var f = new FileStream(raw, FileMode.CreateNew, FileAccess.Write))
        {
            f.SetLength(size);
            var rng = new Random(5);
            foreach (long at in new long[] { 0, 3 * VdiTestKit.MiB + 100, 10 * VdiTestKit.MiB, size - 70000 })
            {
                var data = new byte[Math.Min(1_500_000, size - at)];
                rng.NextBytes(data);
                f.Position = at;
                f.Write(data);
            }
        }
        string expected = ContentHash.OfFile(raw);
        foreach (var (name, extra) in new[] { ("dyn.vdi", Array.Empty<string>()), ("static.vdi", new[] { "-o", "static=on" }) })
        {
            string vdi = dir.File(name);
            ExternalTool.RunChecked("qemu-img", new[] { "convert", "-f", "raw", "-O", "vdi" }.Concat(extra).Concat(new[] { raw, vdi }).ToArray());
            using var chain = DiskImage.Open(vdi);
            Assert.Equal(extra.Length == 0 ? ImageType.Dynamic : ImageType.Fixed, chain.Top.Type);
            Assert.Equal(expected, ContentHash.Of(chain));
            Assert.True(chain.Check().IsClean, string.Join("\n", chain.Check().Problems));
        }
    }

    [RequiresToolFact("qemu-img", "qemu-io")]
    public void Image_written_by_qemu_io_reads_as_qemu_reads_it()
    {
        using var dir = new TempDirectory("vdi-interop");
        string vdi = dir.File("q.vdi"), raw = dir.File("q.raw");
        ExternalTool.RunChecked("qemu-img", "create", "-f", "vdi", vdi, "16M");
        ExternalTool.RunChecked("qemu-io", "-f", "vdi",
            "-c", "write -P 0xab 1M 3M",
            "-c", "write -P 0x11 5000 777",
            "-c", "write -P 0x5c 15M 1M",
            "-c", "write -z 2M 1M", vdi);
        ExternalTool.RunChecked("qemu-img", "convert", "-f", "vdi", "-O", "raw", vdi, raw);
        using var chain = DiskImage.Open(vdi);
        Assert.Equal(ContentHash.OfFile(raw), ContentHash.Of(chain));
        var probe = new byte[777];
        chain.Read(5000, probe);
        Assert.All(probe, b => Assert.Equal(0x11, b));
    }

    [RequiresToolFact("qemu-img", "qemu-io")]
    public void Image_we_wrote_reads_in_qemu_io_with_the_pattern_we_wrote()
    {
        using var dir = new TempDirectory("vdi-interop");
        string vdi = dir.File("ours.vdi");
        using (var layer = VdiTestKit.CreateVdi(vdi, 8 * VdiTestKit.MiB)) { }
        using (var chain = DiskImage.Open(vdi, OpenOptions.ReadWrite))
        {
            chain.Write(VdiTestKit.MiB + 4096, Enumerable.Repeat((byte)0x77, 300_000).ToArray());
            chain.WriteZeroes(4 * VdiTestKit.MiB, VdiTestKit.MiB);
        }
        var r = ExternalTool.RunChecked("qemu-io", "-r", "-f", "vdi",
            "-c", "read -P 0x77 1052672 300000", "-c", "read -P 0 0 1052672", "-c", "read -P 0 4M 4M", vdi);
        Assert.DoesNotContain("Pattern verification failed", r);
        ExternalTool.RunChecked("qemu-img", "check", "-f", "vdi", vdi);
    }
}
