using System.Buffers.Binary;
using System.Diagnostics;
using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.Formats.Vdi;
using DiskSnapshotEngine.IO;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Formats.Vdi;

/// <summary>The VDI layer's own contract: linkage, versions, block states, write spans, zeroing, old versions.</summary>
public sealed class VdiLayerTests
{
    private const int MiB = VdiTestKit.MiB;

    [Fact]
    public void Differencing_child_records_the_parents_uuidCreate_and_uuidModify()
    {
        using var dir = new TempDirectory("vdi");
        ImageIdentity parentId;
        using (var p = VdiTestKit.CreateVdi(dir.File("p.vdi"), 8 * MiB)) parentId = p.Identity;
        using (var c = DiskImage.CreateDifferencing(dir.File("c.vdi"), dir.File("p.vdi")))
        {
            Assert.Equal(ImageType.Differencing, c.Type);
            Assert.Equal(parentId.Id, c.ParentLink!.ParentId);
            Assert.Equal(parentId.Version, c.ParentLink.ParentVersion);
            Assert.NotEqual(parentId.Id, c.Identity.Id);
        }
        using var reopened = DiskImage.OpenLayer(dir.File("c.vdi"), false);
        var d = VdiTestKit.DetailsOf(reopened);
        Assert.Equal(parentId.Id.ToString(), d["uuidLinkage"]);
        Assert.Equal(parentId.Version.ToString(), d["uuidParentModify"]);
        Assert.Equal(reopened.Identity.Id.ToString(), d["uuidCreate"]);
        Assert.Equal(reopened.Identity.Version.ToString(), d["uuidModify"]);
        Assert.Equal("400", d["cbHeader"]);
        // dse's locator names where the parent was (a hint the identity above verifies).
        Assert.Equal(new[] { dir.File("p.vdi") }, reopened.ParentLink!.CandidatePaths);
    }

    [Fact]
    public void Creating_a_64GiB_child_is_constant_time_and_well_under_100ms()
    {
        using var dir = new TempDirectory("vdi");
        const long size = 64L << 30;
        using (VdiTestKit.CreateVdi(dir.File("p.vdi"), size)) { }
        // Best of three, so a busy shared machine does not decide the result; the work itself is one 256 KiB map write and a flush.
        var best = TimeSpan.MaxValue;
        for (int i = 0; i < 3; i++)
        {
            var sw = Stopwatch.StartNew();
            using (DiskImage.CreateDifferencing(dir.File($"c{i}.vdi"), dir.File("p.vdi"))) { }
            sw.Stop();
            if (sw.Elapsed < best) best = sw.Elapsed;
        }
        Assert.True(best < TimeSpan.FromMilliseconds(100), $"creating a 64 GiB child took {best.TotalMilliseconds} ms");
        using var c = DiskImage.OpenLayer(dir.File("c0.vdi"), false);
        Assert.Equal(size, c.VirtualSize);
        // Every map entry is FREE: the whole disk is NotPresent in one extent, read from the parent.
        var ext = c.GetStatus(0, size);
        Assert.Equal(new LayerExtent(0, size, ExtentKind.NotPresent), ext);
        Assert.True(new FileInfo(dir.File("c0.vdi")).Length <= 2 * MiB);
    }

    [Fact]
    public void Opening_a_2TiB_image_reads_no_map_and_allocates_almost_nothing()
    {
        using var dir = new TempDirectory("vdi");
        const long size = 2L << 40; // 2 Mi blocks: an 8 MiB map
        string path = dir.File("big.vdi");
        using (var l = VdiTestKit.CreateVdi(path, size)) l.Write(size - MiB, RandomData.Bytes(MiB, 5));
        using var file = new ReadCountingFile(DiskSnapshotEngine.IO.ImageFile.Open(path, false));
        long before = GC.GetAllocatedBytesForCurrentThread();
        using var layer = new VdiDriver().Open(file, false);
        long openAllocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(file.BytesRead <= 4096, $"open read {file.BytesRead} bytes");
        Assert.True(openAllocated < 64 * 1024, $"open allocated {openAllocated} bytes");
        // One lookup pages in one 4 KiB page of the map, not the map.
        var ext = layer.GetStatus(size - MiB, MiB);
        Assert.Equal(ExtentKind.Data, ext.Kind);
        Assert.True(file.BytesRead <= 4096 + 4096, $"a lookup read {file.BytesRead} bytes in all");
    }

    [Fact]
    public void An_undo_image_type_3_reads_like_a_differencing_image()
    {
        using var dir = new TempDirectory("vdi");
        string p = dir.File("p.vdi"), c = dir.File("c.vdi");
        using (var l = VdiTestKit.CreateVdi(p, 4 * MiB)) l.Write(0, RandomData.Bytes(4 * MiB, 6));
        using (DiskImage.CreateDifferencing(c, p)) { }
        using (var chain = DiskImage.Open(c, OpenOptions.ReadWrite)) chain.Write(MiB + 5, RandomData.Bytes(100, 7));
        var bytes = File.ReadAllBytes(c);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(76), 3);
        File.WriteAllBytes(c, bytes);
        using var undo = DiskImage.Open(c);
        Assert.Equal(ImageType.Differencing, undo.Top.Type);
        Assert.Equal("3", VdiTestKit.DetailsOf(undo.Top)["u32Type"]);
        var expected = RandomData.Bytes(4 * MiB, 6);
        RandomData.Bytes(100, 7).CopyTo(expected, MiB + 5);
        var actual = new byte[4 * MiB];
        undo.Read(0, actual);
        Assert.Equal(expected, actual);
    }

    [Fact]
    public void Free_block_reads_as_zero_in_a_base_and_as_not_present_in_a_child()
    {
        using var dir = new TempDirectory("vdi");
        using var b = VdiTestKit.CreateVdi(dir.File("b.vdi"), 4 * MiB);
        Assert.Equal(ExtentKind.Zero, b.GetStatus(0, 4 * MiB).Kind);
        Assert.Null(b.ParentLink);
        b.Dispose();
        using var c = DiskImage.CreateDifferencing(dir.File("c.vdi"), dir.File("b.vdi"));
        Assert.Equal(ExtentKind.NotPresent, c.GetStatus(0, 4 * MiB).Kind);
    }

    [Fact]
    public void Write_spans_cover_whole_unallocated_blocks_and_exact_ranges_in_allocated_ones()
    {
        using var dir = new TempDirectory("vdi");
        using var l = VdiTestKit.CreateVdi(dir.File("b.vdi"), 4 * MiB - 1024); // a short last block
        Assert.Equal((MiB, (long)MiB), l.GetWriteSpan(MiB + 10, 100));
        Assert.Equal((3L * MiB, (long)MiB - 1024), l.GetWriteSpan(3L * MiB + 5, 10));
        Assert.Equal((0L, 2L * MiB), l.GetWriteSpan(10, MiB));
        l.Write(MiB, RandomData.Bytes(MiB, 1));
        Assert.Equal((MiB + 10L, 100L), l.GetWriteSpan(MiB + 10, 100));
        var e = Assert.Throws<DiskImageException>(() => l.Write(2 * MiB + 10, new byte[100]));
        Assert.Equal(ErrorKind.InvalidArgument, e.Kind);
        // The short last block is stored whole on disk and reads back exactly.
        l.Write(3L * MiB, RandomData.Bytes(MiB - 1024, 2));
        var back = new byte[MiB - 1024];
        l.File.ReadExactly(back, l.GetStatus(3L * MiB, MiB - 1024).FileOffset, "test");
        Assert.Equal(RandomData.Bytes(MiB - 1024, 2), back);
    }

    [Fact]
    public void A_full_block_of_zeros_in_a_child_is_recorded_as_ZERO_without_allocating()
    {
        using var dir = new TempDirectory("vdi");
        using (var b = VdiTestKit.CreateVdi(dir.File("b.vdi"), 4 * MiB)) b.Write(0, RandomData.Bytes(4 * MiB, 3));
        using (DiskImage.CreateDifferencing(dir.File("c.vdi"), dir.File("b.vdi"))) { }
        long before = new FileInfo(dir.File("c.vdi")).Length;
        using (var chain = DiskImage.Open(dir.File("c.vdi"), OpenOptions.ReadWrite))
        {
            chain.Write(MiB, new byte[MiB]);            // whole block of zeros through the chain
            chain.WriteZeroes(2 * MiB, 2 * MiB);         // explicit zeroing of two blocks
            Assert.Equal(ExtentKind.Zero, chain.Top.GetStatus(MiB, 3 * MiB).Kind);
        }
        Assert.Equal(before, new FileInfo(dir.File("c.vdi")).Length);
        using var reopened = DiskImage.Open(dir.File("c.vdi"));
        var content = new byte[4 * MiB];
        reopened.Read(0, content);
        Assert.Equal(RandomData.Bytes(4 * MiB, 3).AsSpan(0, MiB).ToArray(), content.AsSpan(0, MiB).ToArray());
        Assert.True(SpanHelpers.IsAllZero(content.AsSpan(MiB)));
        Assert.True(reopened.Check().IsClean);
    }

    [Fact]
    public void WriteZeroes_over_allocated_blocks_zeroes_them_in_place_without_leaking()
    {
        using var dir = new TempDirectory("vdi");
        string path = dir.File("b.vdi");
        using (var l = VdiTestKit.CreateVdi(path, 4 * MiB))
        {
            l.Write(0, RandomData.Bytes(2 * MiB, 4));
            l.WriteZeroes(0, MiB);
            var buf = new byte[MiB];
            l.File.ReadExactly(buf, l.GetStatus(0, MiB).FileOffset, "test");
            Assert.True(SpanHelpers.IsAllZero(buf));
            Assert.Throws<DiskImageException>(() => l.WriteZeroes(10, MiB));
        }
        using var chain = DiskImage.Open(path);
        Assert.True(chain.Check().IsClean, string.Join("\n", chain.Check().Problems));
        var all = new byte[2 * MiB];
        chain.Read(0, all);
        Assert.True(SpanHelpers.IsAllZero(all.AsSpan(0, MiB)));
        Assert.Equal(RandomData.Bytes(2 * MiB, 4).AsSpan(MiB).ToArray(), all.AsSpan(MiB).ToArray());
    }

    [Fact]
    public void uuidModify_changes_once_per_session_on_the_first_content_change_and_not_for_reads()
    {
        using var dir = new TempDirectory("vdi");
        string path = dir.File("b.vdi");
        Guid v0;
        using (var l = VdiTestKit.CreateVdi(path, 4 * MiB)) v0 = l.Identity.Version;
        // On a crash-simulating copy: what is durable after the first write must already carry the new version.
        var file = CrashSimulationFile.FromFile(path);
        using (var l = VdiTestKit.OpenLayer(file, writable: true))
        {
            Assert.Equal(v0, l.Identity.Version);
            l.GetStatus(0, MiB);
            Assert.Equal(v0, l.Identity.Version);
            l.Write(0, RandomData.Bytes(MiB, 1));
            Guid v1 = l.Identity.Version;
            Assert.NotEqual(v0, v1);
            Assert.Equal(v1, new Guid(file.AfterPowerLoss(Array.Empty<int>()).AsSpan(408, 16)));
            l.Write(MiB, RandomData.Bytes(MiB, 2));
            Assert.Equal(v1, l.Identity.Version);
        }
        using (var l = DiskImage.OpenLayer(path, writable: true)) l.Write(0, RandomData.Bytes(MiB, 1));
        Guid afterSession1 = ReadUuidModify(path);
        using (var l = DiskImage.OpenLayer(path, writable: true)) l.Write(0, RandomData.Bytes(MiB, 3));
        Assert.NotEqual(afterSession1, ReadUuidModify(path));
    }

    private static Guid ReadUuidModify(string path)
    {
        var bytes = new byte[512];
        using (var f = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite)) f.ReadExactly(bytes);
        return new Guid(bytes.AsSpan(408, 16));
    }

    [Fact]
    public void PreserveVersionOnWrite_keeps_uuidModify_so_children_stay_valid()
    {
        using var dir = new TempDirectory("vdi");
        string p = dir.File("p.vdi"), c = dir.File("c.vdi");
        Guid v;
        using (var l = VdiTestKit.CreateVdi(p, 4 * MiB)) v = l.Identity.Version;
        using (DiskImage.CreateDifferencing(c, p)) { }
        using (var l = DiskImage.OpenLayer(p, writable: true))
        {
            l.PreserveVersionOnWrite = true;
            l.Write(0, RandomData.Bytes(MiB, 9));
            l.WriteZeroes(MiB, MiB);
            Assert.Equal(v, l.Identity.Version);
        }
        Assert.Equal(v, ReadUuidModify(p));
        using (var chain = DiskImage.Open(c)) Assert.Equal(2, chain.Layers.Count);
        // Without the flag, the same kind of write breaks the link.
        using (var l = DiskImage.OpenLayer(p, writable: true)) l.Write(0, RandomData.Bytes(MiB, 10));
        Assert.Equal(ErrorKind.ParentMismatch, Assert.Throws<DiskImageException>(() => DiskImage.Open(c).Dispose()).Kind);
    }

    [Fact]
    public void Create_with_an_explicit_identity_keeps_it_so_existing_children_still_link()
    {
        using var dir = new TempDirectory("vdi");
        var identity = new ImageIdentity(Guid.NewGuid(), Guid.NewGuid());
        foreach (var type in new[] { ImageType.Dynamic, ImageType.Fixed })
        {
            string path = dir.File($"{type}.vdi");
            using (var l = VdiTestKit.CreateVdi(path, 4 * MiB, type, identity: identity)) Assert.Equal(identity, l.Identity);
            using var reopened = DiskImage.OpenLayer(path, false);
            Assert.Equal(identity, reopened.Identity);
            Assert.Equal(type, reopened.Type);
        }
    }

    [Fact]
    public void SetParent_rewrites_uuidLinkage_and_uuidParentModify_durably()
    {
        using var dir = new TempDirectory("vdi");
        string a = dir.File("a.vdi"), b = dir.File("b.vdi"), c = dir.File("c.vdi");
        using (var l = VdiTestKit.CreateVdi(a, 4 * MiB)) l.Write(0, RandomData.Bytes(MiB, 1));
        using (var l = VdiTestKit.CreateVdi(b, 4 * MiB)) l.Write(0, RandomData.Bytes(MiB, 2));
        using (DiskImage.CreateDifferencing(c, a)) { }
        ImageIdentity bId;
        using (var pb = DiskImage.OpenLayer(b, false))
        {
            bId = pb.Identity;
            using var child = DiskImage.OpenLayer(c, writable: true);
            Guid version = child.Identity.Version;
            child.SetParent(ParentDescriptor.Of(pb));
            Assert.Equal(version, child.Identity.Version); // relinking does not change the child's own content
        }
        using (var child = DiskImage.OpenLayer(c, false))
        {
            Assert.Equal(bId.Id, child.ParentLink!.ParentId);
            Assert.Equal(bId.Version, child.ParentLink.ParentVersion);
        }
        using (var chain = DiskImage.Open(c))
        {
            Assert.Equal(b, chain.Layers[1].Path);
            var first = new byte[MiB];
            chain.Read(0, first);
            Assert.Equal(RandomData.Bytes(MiB, 2), first);
        }

        using (var baseLayer = DiskImage.OpenLayer(a, writable: true))
        using (var pb = DiskImage.OpenLayer(b, false))
            Assert.Equal(ErrorKind.Unsupported, Assert.Throws<DiskImageException>(() => baseLayer.SetParent(ParentDescriptor.Of(pb))).Kind);
        using var small = VdiTestKit.CreateVdi(dir.File("small.vdi"), 2 * MiB);
        using var child2 = DiskImage.OpenLayer(c, writable: true);
        Assert.Equal(ErrorKind.ChainInvalid, Assert.Throws<DiskImageException>(() => child2.SetParent(ParentDescriptor.Of(small))).Kind);
    }

    [Fact]
    public void Read_only_layer_refuses_writes_and_leaves_the_file_unchanged()
    {
        using var dir = new TempDirectory("vdi");
        string path = dir.File("b.vdi");
        using (VdiTestKit.CreateVdi(path, 4 * MiB)) { }
        string before = ContentHash.OfFile(path);
        using (var l = DiskImage.OpenLayer(path, writable: false))
        {
            Assert.Equal(ErrorKind.ReadOnly, Assert.Throws<DiskImageException>(() => l.Write(0, new byte[MiB])).Kind);
            Assert.Equal(ErrorKind.ReadOnly, Assert.Throws<DiskImageException>(() => l.WriteZeroes(0, MiB)).Kind);
        }
        Assert.Equal(before, ContentHash.OfFile(path));
    }

    [Fact]
    public void Create_refuses_bad_arguments()
    {
        using var dir = new TempDirectory("vdi");
        var driver = new VdiDriver();
        var file = new CrashSimulationFile(dir.File("x.vdi"));
        Assert.Equal(ErrorKind.Unsupported, Assert.Throws<DiskImageException>(() => driver.Create(file, new ImageCreateOptions(MiB, LogicalSectorSize: 4096), null)).Kind);
        Assert.Equal(ErrorKind.InvalidArgument, Assert.Throws<DiskImageException>(() => driver.Create(file, new ImageCreateOptions(MiB, BlockSize: 3000), null)).Kind);
        Assert.Equal(ErrorKind.InvalidArgument, Assert.Throws<DiskImageException>(() => driver.Create(file, new ImageCreateOptions(MiB, ImageType.Differencing), null)).Kind);
        var rawParent = new ParentDescriptor("/x.raw", ImageFormat.Raw, default, MiB, 512);
        Assert.Equal(ErrorKind.Unsupported, Assert.Throws<DiskImageException>(() => driver.Create(file, new ImageCreateOptions(MiB, ImageType.Differencing), rawParent)).Kind);
        Assert.Equal(0, file.WriteCount);
    }

    [Fact]
    public void Version_1_0_and_0_x_headers_are_read()
    {
        using var dir = new TempDirectory("vdi");
        // 1.0: same layout as 1.1.
        string path = dir.File("v10.vdi");
        using (var l = VdiTestKit.CreateVdi(path, 2 * MiB)) l.Write(0, RandomData.Bytes(MiB, 7));
        var bytes = File.ReadAllBytes(path);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(68), 0x00010000);
        File.WriteAllBytes(path, bytes);
        using (var chain = DiskImage.Open(path))
        {
            var b = new byte[MiB];
            chain.Read(0, b);
            Assert.Equal(RandomData.Bytes(MiB, 7), b);
            Assert.Equal("1.0", VdiTestKit.DetailsOf(chain.Top)["version"]);
        }

        // 0.x (VDIHEADER0): the map follows the 348-byte header, the data follows the map.
        var v0 = new byte[72 + 348 + 8 + MiB];
        "<<< old >>>\n"u8.CopyTo(v0);
        BinaryPrimitives.WriteUInt32LittleEndian(v0.AsSpan(64), 0xBEDA107F);
        BinaryPrimitives.WriteUInt32LittleEndian(v0.AsSpan(68), 0x00000001);
        BinaryPrimitives.WriteUInt32LittleEndian(v0.AsSpan(72), 1);               // u32Type normal
        BinaryPrimitives.WriteUInt32LittleEndian(v0.AsSpan(336 + 12), 512);       // LegacyGeometry.cbSector
        BinaryPrimitives.WriteUInt64LittleEndian(v0.AsSpan(352), 2 * MiB);        // cbDisk
        BinaryPrimitives.WriteUInt32LittleEndian(v0.AsSpan(360), MiB);            // cbBlock
        BinaryPrimitives.WriteUInt32LittleEndian(v0.AsSpan(364), 2);              // cBlocks
        BinaryPrimitives.WriteUInt32LittleEndian(v0.AsSpan(368), 1);              // cBlocksAllocated
        var id = Guid.NewGuid();
        id.TryWriteBytes(v0.AsSpan(372));
        BinaryPrimitives.WriteUInt32LittleEndian(v0.AsSpan(420), 0);              // block 0 -> data block 0
        BinaryPrimitives.WriteUInt32LittleEndian(v0.AsSpan(424), 0xFFFFFFFF);     // block 1 free
        RandomData.Bytes(MiB, 8).CopyTo(v0, 428);
        string p0 = dir.File("v0.vdi");
        File.WriteAllBytes(p0, v0);
        using (var chain = DiskImage.Open(p0))
        {
            var all = new byte[2 * MiB];
            chain.Read(0, all);
            Assert.Equal(RandomData.Bytes(MiB, 8), all.AsSpan(0, MiB).ToArray());
            Assert.True(SpanHelpers.IsAllZero(all.AsSpan(MiB)));
            Assert.Equal(id, chain.Top.Identity.Id);
            Assert.True(chain.Check().IsClean, string.Join("\n", chain.Check().Problems));
        }
        Assert.Equal(ErrorKind.Unsupported, Assert.Throws<DiskImageException>(() => DiskImage.OpenLayer(p0, writable: true)).Kind);
    }
}
