using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Formats.Vhdx;

public class VhdxWriteTests
{
    private static void WriteBoth(DiskChain chain, FileStream raw, long offset, byte[] data)
    {
        chain.Write(offset, data);
        raw.Position = offset;
        raw.Write(data);
    }

    [RequiresToolFact("qemu-img")]
    public void Acceptance_1GiB_dynamic_with_257MiB_written_passes_qemu_img_check_and_compare()
    {
        using var dir = new TempDirectory("vhdx");
        var vhdx = dir.File("a.vhdx");
        var rawPath = dir.File("a.raw");
        const long size = 1L << 30;
        var rng = new Random(7);
        using (var raw = File.Create(rawPath))
        {
            raw.SetLength(size);
            using var layer = DiskImage.Create(vhdx, new ImageCreateOptions(size));
            using var chain = new DiskChain(new[] { layer });
            var mib = new byte[1 << 20];
            // 256 scattered 1 MiB runs at unaligned offsets, plus an unaligned 777-byte run.
            var offsets = Enumerable.Range(0, 1023).OrderBy(_ => rng.Next()).Take(256).ToList();
            foreach (int o in offsets)
            {
                rng.NextBytes(mib);
                WriteBoth(chain, raw, (long)o << 20 | (long)rng.Next(0, 4096) * 7 % (1 << 20), mib);
            }
            var odd = new byte[777];
            rng.NextBytes(odd);
            WriteBoth(chain, raw, 123_456_789, odd);
            // Also a whole block of zeros somewhere never written (stays unallocated).
            chain.Flush();
        }
        ExternalTool.RunChecked("qemu-img", "check", "-f", "vhdx", vhdx);
        var cmp = ExternalTool.RunChecked("qemu-img", "compare", "-f", "vhdx", "-F", "raw", vhdx, rawPath);
        Assert.Contains("identical", cmp);
        using (var chain = DiskImage.Open(vhdx))
        {
            VhdxTestUtil.AssertSameAsRaw(chain, rawPath);
            var check = chain.Check();
            Assert.True(check.IsClean, string.Join("\n", check.Problems));
            Assert.Equal(Guid.Empty.ToString("B"), chain.Top.Details.First(d => d.Key == "log guid").Value);
        }
    }

    [Fact]
    public void A_whole_block_of_zeros_over_an_unallocated_block_is_recorded_as_ZERO_without_allocating()
    {
        using var dir = new TempDirectory("vhdx");
        var path = dir.File("z.vhdx");
        long lengthBefore;
        using (var layer = DiskImage.Create(path, new ImageCreateOptions(64L << 20, BlockSize: 1 << 20)))
        {
            lengthBefore = new FileInfo(path).Length;
            layer.Write(5L << 20, new byte[1 << 20]);
            layer.Flush();
            Assert.Equal(new LayerExtent(5L << 20, 1 << 20, ExtentKind.Zero), layer.GetStatus(5L << 20, 1 << 20));
            Assert.Equal(ExtentKind.NotPresent, layer.GetStatus(6L << 20, 1 << 20).Kind);
        }
        Assert.Equal(lengthBefore, new FileInfo(path).Length);
    }

    [RequiresToolFact("qemu-img")]
    public void Fixed_image_is_fully_allocated_at_creation_and_never_grows()
    {
        using var dir = new TempDirectory("vhdx");
        var path = dir.File("f.vhdx");
        const long size = 24L << 20;
        long length;
        using (var layer = DiskImage.Create(path, new ImageCreateOptions(size, ImageType.Fixed, BlockSize: 2 << 20)))
        {
            Assert.Equal(ImageType.Fixed, layer.Type);
            length = new FileInfo(path).Length;
            Assert.True(length >= size, $"file of {length} bytes cannot hold {size}");
            var ext = layer.GetStatus(0, size);
            Assert.Equal(ExtentKind.Data, ext.Kind);
            Assert.Equal(size, ext.Length); // contiguous: one run for the whole disk
            var data = Enumerable.Range(0, 5000).Select(i => (byte)i).ToArray();
            using var chain = new DiskChain(new[] { layer });
            chain.Write(3_000_001, data);
            chain.WriteZeroes(0, 4 << 20);
            chain.Flush();
        }
        Assert.Equal(length, new FileInfo(path).Length);
        ExternalTool.RunChecked("qemu-img", "check", "-f", "vhdx", path);
        var info = ExternalTool.RunChecked("qemu-img", "info", "--output=json", "-f", "vhdx", path);
        Assert.Contains("\"virtual-size\": 25165824", info);
        using var reopened = DiskImage.Open(path);
        var back = new byte[5000];
        reopened.Read(3_000_001, back);
        Assert.Equal(new byte[5000], back); // zeroed by WriteZeroes(0, 4 MiB) after the write
    }

    [Fact]
    public void Differencing_chain_reads_through_parents_with_unaligned_writes_and_records_the_parent_link()
    {
        using var dir = new TempDirectory("vhdx");
        var basePath = dir.File("base.vhdx");
        var childPath = dir.File("sub/child.vhdx");
        Directory.CreateDirectory(dir.File("sub"));
        const long size = 8L << 20;
        var expected = new byte[size];
        using (var b = DiskImage.Create(basePath, new ImageCreateOptions(size, BlockSize: 1 << 20)))
        using (var chain = new DiskChain(new[] { b }))
        {
            var data = RandomData.Bytes(3 << 20, 1);
            chain.Write(100, data);
            data.CopyTo(expected, 100);
        }
        ImageIdentity baseIdentity;
        using (var b = DiskImage.OpenLayer(basePath, false)) baseIdentity = b.Identity;
        using (var child = DiskImage.CreateDifferencing(childPath, basePath))
        {
            Assert.Equal(ImageType.Differencing, child.Type);
            Assert.Equal(2 << 20, child.BlockSize);
            Assert.Equal(baseIdentity.Version, child.ParentLink!.ParentVersion);
            Assert.Equal("parent_linkage", child.ParentLink.VersionName);
            Assert.Null(child.ParentLink.ParentId);
            Assert.Equal(Path.GetFullPath(basePath), child.ParentLink.CandidatePaths[0]);
            Assert.Contains(child.Details, d => d.Key == "parent locator relative_path" && d.Value == "..\\base.vhdx");
        }
        using (var chain = DiskImage.Open(childPath, OpenOptions.ReadWrite))
        {
            var data = RandomData.Bytes(777, 2);
            chain.Write(1_000_003, data);
            data.CopyTo(expected, 1_000_003);
            chain.Write(5_000_000, data);
            data.CopyTo(expected, 5_000_000);
            chain.WriteZeroes(6L << 20, 2L << 20); // ZERO over the parent's (absent) data, one 2 MiB block
            Array.Clear(expected, 6 << 20, 2 << 20);
        }
        using (var chain = DiskImage.Open(childPath))
        {
            Assert.Equal(2, chain.Layers.Count);
            var back = new byte[size];
            chain.Read(0, back);
            Assert.True(expected.AsSpan().SequenceEqual(back));
            Assert.Equal(ExtentKind.Zero, chain.Top.GetStatus(6L << 20, 2L << 20).Kind);
            Assert.Equal(ExtentKind.NotPresent, chain.Top.GetStatus(0, 512).Kind);
            Assert.Equal(ExtentKind.Data, chain.Top.GetStatus(1_000_003, 1).Kind);
            Assert.True(chain.Check().IsClean, string.Join("\n", chain.Check().Problems));
        }
        // The parent is unchanged: its version still matches what the child recorded.
        using (var b = DiskImage.OpenLayer(basePath, false)) Assert.Equal(baseIdentity, b.Identity);
    }

    [Fact]
    public void Differencing_parent_must_be_a_vhdx()
    {
        using var dir = new TempDirectory("vhdx");
        var raw = dir.File("p.img");
        DiskImage.Create(raw, new ImageCreateOptions(4L << 20)).Dispose();
        var e = Assert.Throws<DiskImageException>(() => DiskImage.CreateDifferencing(dir.File("c.vhdx"), raw));
        Assert.Equal(ErrorKind.Unsupported, e.Kind);
        Assert.False(File.Exists(dir.File("c.vhdx")));
    }

    [Fact]
    public void Content_change_gives_a_new_DataWriteGuid_unless_PreserveVersionOnWrite_and_identity_can_be_imposed()
    {
        using var dir = new TempDirectory("vhdx");
        var path = dir.File("v.vhdx");
        var imposed = new ImageIdentity(Guid.NewGuid(), Guid.NewGuid());
        using (var layer = DiskImage.Create(path, new ImageCreateOptions(4L << 20, BlockSize: 1 << 20, Identity: imposed)))
            Assert.Equal(imposed, layer.Identity);
        using (var layer = DiskImage.OpenLayer(path, true))
        {
            Assert.Equal(imposed, layer.Identity);
            layer.PreserveVersionOnWrite = true;
            layer.Write(0, new byte[] { 1, 2, 3, 4, 5, 6, 7, 8 }.Concat(new byte[504]).ToArray());
        }
        string fileWriteGuid;
        using (var layer = DiskImage.OpenLayer(path, true))
        {
            Assert.Equal(imposed, layer.Identity);
            fileWriteGuid = layer.Details.First(d => d.Key == "file write guid").Value;
            layer.Write(512, new byte[512].Select(_ => (byte)9).ToArray());
            Assert.Equal(imposed.Id, layer.Identity.Id);
            Assert.NotEqual(imposed.Version, layer.Identity.Version);
        }
        using (var layer = DiskImage.OpenLayer(path, false))
        {
            Assert.NotEqual(imposed.Version, layer.Identity.Version);
            Assert.NotEqual(fileWriteGuid, layer.Details.First(d => d.Key == "file write guid").Value);
        }
    }

    [Fact]
    public void SetParent_relinks_a_child_to_a_moved_parent_through_the_log()
    {
        using var dir = new TempDirectory("vhdx");
        var basePath = dir.File("base.vhdx");
        var childPath = dir.File("child.vhdx");
        using (var b = DiskImage.Create(basePath, new ImageCreateOptions(4L << 20, BlockSize: 1 << 20)))
            b.Write(0, Enumerable.Repeat((byte)0x5a, 4096).ToArray());
        DiskImage.CreateDifferencing(childPath, basePath).Dispose();
        Directory.CreateDirectory(dir.File("moved/deeper"));
        var moved = dir.File("moved/deeper/renamed-base.vhdx");
        File.Move(basePath, moved);
        Assert.Equal(ErrorKind.ParentNotFound, Assert.Throws<DiskImageException>(() => DiskImage.Open(childPath)).Kind);
        using (var parent = DiskImage.OpenLayer(moved, false))
        using (var child = DiskImage.OpenLayer(childPath, true))
        {
            child.SetParent(ParentDescriptor.Of(parent));
            Assert.Equal(Path.GetFullPath(moved), child.ParentLink!.CandidatePaths[0]);
        }
        using var chain = DiskImage.Open(childPath);
        Assert.Equal(Path.GetFullPath(moved), chain.Layers[1].Path);
        var buf = new byte[4096];
        chain.Read(0, buf);
        Assert.All(buf, x => Assert.Equal(0x5a, x));
        Assert.Contains(chain.Top.Details, d => d.Key == "parent locator relative_path" && d.Value == ".\\moved\\deeper\\renamed-base.vhdx");
    }

    [Fact]
    public void Stale_sector_bitmap_bits_of_a_not_present_block_never_hide_the_parent()
    {
        using var dir = new TempDirectory("vhdx");
        var basePath = dir.File("base.vhdx");
        using (var b = DiskImage.Create(basePath, new ImageCreateOptions(4L << 20, BlockSize: 1 << 20)))
            b.Write(0, Enumerable.Repeat((byte)0x77, 1 << 20).ToArray());
        var childPath = dir.File("child.vhdx");
        using (var c = DiskImage.CreateDifferencing(childPath, basePath)) c.Write(0, Enumerable.Repeat((byte)1, 512).ToArray());
        // Another writer dropped block 0 back to NOT_PRESENT (BAT at 3 MiB in our layout) but left its bitmap bits.
        using (var f = new FileStream(childPath, FileMode.Open, FileAccess.ReadWrite))
        {
            f.Position = 3L << 20;
            f.Write(new byte[8]);
        }
        using (var chain = DiskImage.Open(childPath, OpenOptions.ReadWrite))
        {
            var buf = new byte[512];
            chain.Read(0, buf);
            Assert.All(buf, x => Assert.Equal(0x77, x));
            chain.Write(4096, Enumerable.Repeat((byte)2, 512).ToArray());
        }
        using var reopened = DiskImage.Open(childPath);
        var back = new byte[8192];
        reopened.Read(0, back);
        Assert.All(back.AsSpan(0, 4096).ToArray(), x => Assert.Equal(0x77, x));
        Assert.All(back.AsSpan(4096, 512).ToArray(), x => Assert.Equal(2, x));
    }
}
