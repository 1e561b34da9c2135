using System.Buffers.Binary;
using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.Formats.Vhdx;
using DiskSnapshotEngine.IO;
using DiskSnapshotEngine.Tests.Infrastructure;
using Xunit.Abstractions;

namespace DiskSnapshotEngine.Tests.Formats.Vhdx;

/// <summary>
/// libvhdi's vhdimount as a second, independent reader of our VHDX differencing chains: it resolves the parents from
/// our parent locators itself and serves each layer's view of the disk as a file.
/// </summary>
public class VhdiMountInteropTests(ITestOutputHelper output)
{
    private readonly ITestOutputHelper _output = output;
    private const long Size = 12L << 20;

    private static void Link(string child, string parent, int blockSize, int logicalSectorSize)
    {
        using var p = DiskImage.OpenLayer(parent, false);
        new VhdxDriver().Create(ImageFile.Create(child),
            new ImageCreateOptions(Size, ImageType.Differencing, blockSize, logicalSectorSize), ParentDescriptor.Of(p)).Dispose();
    }

    private static void RandomWrites(string image, Random rng, int count, int sector)
    {
        using var chain = DiskImage.Open(image, OpenOptions.ReadWrite);
        for (int i = 0; i < count; i++)
        {
            // Odd byte offsets and lengths: the chain does the read-modify-write of partial sectors (and the
            // copy-on-write from the parent in a child), so blocks end up partially present with sector bitmaps.
            // Runs stay well below a block: a whole block of zeros in a child is a ZERO block, which libvhdi reads from
            // the parent (see the payload-state test below), so it is kept out of this byte-for-byte comparison.
            long off = rng.NextInt64(0, Size - 1);
            int len = (int)Math.Min(Size - off, rng.Next(1, 300_000));
            if (rng.Next(6) == 0)
            {
                // Zeroes over whole sectors: whole blocks become ZERO, the rest zero-filled sectors.
                long start = SpanHelpers.AlignDown(off, sector);
                long end = Math.Min(Size, SpanHelpers.AlignUp(off + len, sector));
                chain.WriteZeroes(start, end - start);
            }
            else
            {
                var data = new byte[len];
                rng.NextBytes(data);
                chain.Write(off, data);
            }
        }
    }

    [RequiresFuseMountFact("vhdimount")]
    public void Vhdimount_reads_every_layer_of_our_three_layer_chain_byte_for_byte()
    {
        foreach (int sector in new[] { 512, 4096 })
        {
            using var dir = new TempDirectory("vhdimount");
            var basePath = dir.File("base.vhdx");
            var child = dir.File("child.vhdx");
            var grandchild = dir.File("grandchild.vhdx");
            var rng = new Random(sector);
            // Three block sizes, so no block boundary of one layer lines up with all of another's.
            DiskImage.Create(basePath, new ImageCreateOptions(Size, BlockSize: 1 << 20, LogicalSectorSize: sector)).Dispose();
            RandomWrites(basePath, rng, 12, sector);
            Link(child, basePath, 4 << 20, sector);
            RandomWrites(child, rng, 12, sector);
            Link(grandchild, child, 2 << 20, sector);
            RandomWrites(grandchild, rng, 12, sector);

            // vhdimount finds child and base itself, from the parent locators we wrote.
            using var mount = FuseMount.Mount("vhdimount", grandchild, dir.File("mnt"));
            // vhdimount numbers the chain from the bottom: vhdi1 is the base alone, vhdi3 the whole chain.
            Assert.Equal(["vhdi1", "vhdi2", "vhdi3"], mount.List());
            var layers = new[] { basePath, child, grandchild };
            var hashes = new List<string>();
            for (int i = 0; i < layers.Length; i++)
            {
                var copy = dir.File($"vhdi{i + 1}.raw");
                mount.CopyOut($"vhdi{i + 1}", copy);
                using var chain = DiskImage.Open(layers[i]);
                Assert.Equal(i + 1, chain.Layers.Count);
                VhdxTestUtil.AssertSameAsRaw(chain, copy);
                hashes.Add(ContentHash.OfFile(copy));
            }
            // Each layer changed the disk, so a reader that skipped a layer (or read the wrong one) cannot pass.
            Assert.Equal(3, hashes.Distinct().Count());
        }
    }

    /// <summary>
    /// MS-VHDX 2.5.1.1: NOT_PRESENT in a differencing file defers to the parent; UNDEFINED, ZERO and UNMAPPED do not
    /// (we read them as zeros). The child's BAT is patched by hand, since our writer only ever writes NOT_PRESENT, ZERO,
    /// FULLY_PRESENT and PARTIALLY_PRESENT. libvhdi 20210425 sends every state below FULLY_PRESENT through the sector
    /// bitmap, so it shows the parent for all four: only NOT_PRESENT is compared with it, the others are reported.
    /// </summary>
    [RequiresFuseMountFact("vhdimount")]
    public void Payload_states_of_a_differencing_child_parent_for_NOT_PRESENT_zeros_for_UNDEFINED_ZERO_UNMAPPED()
    {
        using var dir = new TempDirectory("vhdimount");
        var basePath = dir.File("base.vhdx");
        var child = dir.File("child.vhdx");
        const int Mb = 1 << 20;
        DiskImage.Create(basePath, new ImageCreateOptions(Size, BlockSize: Mb)).Dispose();
        var parentData = RandomData.Bytes(6 * Mb, 5);
        using (var b = DiskImage.Open(basePath, OpenOptions.ReadWrite)) b.Write(0, parentData);
        Link(child, basePath, Mb, 512);
        // A partial write in block 5 allocates the chunk's sector bitmap block (all other bits stay 0). libvhdi reads a
        // differencing block's bitmap from the sector bitmap entry's offset even when that entry is SB_BLOCK_NOT_PRESENT
        // (offset 0 = the file identifier), so without one it would mix in bytes of our creator string.
        var own = RandomData.Bytes(100, 6);
        using (var c = DiskImage.Open(child, OpenOptions.ReadWrite)) c.Write(5L * Mb + 7, own);
        long batOffset, chunkRatio;
        using (var c = (VhdxLayer)DiskImage.OpenLayer(child, false))
        {
            (batOffset, chunkRatio) = (c.BatRegion.FileOffset, c.ChunkRatio);
            Assert.Equal(VhdxBatEntry.PartiallyPresent, c.RawBatEntry(5).State);
        }
        int[] states = [VhdxBatEntry.NotPresent, VhdxBatEntry.Undefined, VhdxBatEntry.Zero, VhdxBatEntry.Unmapped];
        using (var f = new FileStream(child, FileMode.Open, FileAccess.ReadWrite))
        {
            // Block i gets states[i]; FileOffsetMB 0, as the spec reserves it for these states.
            for (long block = 0; block < states.Length; block++)
            {
                var e = new byte[8];
                BinaryPrimitives.WriteUInt64LittleEndian(e, VhdxBatEntry.Make(states[block], 0).Raw);
                f.Position = batOffset + (block + block / chunkRatio) * 8;
                f.Write(e);
            }
        }

        using var mount = FuseMount.Mount("vhdimount", child, dir.File("mnt"));
        var copy = dir.File("vhdi2.raw");
        mount.CopyOut("vhdi2", copy);
        var theirs = File.ReadAllBytes(copy);
        using var ours = DiskImage.Open(child);
        var mine = new byte[Mb];
        for (int block = 0; block < states.Length; block++)
        {
            var parent = parentData.AsMemory(block * Mb, Mb);
            var libvhdi = theirs.AsSpan(block * Mb, Mb);
            ours.Read(block * (long)Mb, mine);
            string Describe(ReadOnlySpan<byte> s) => s.SequenceEqual(parent.Span) ? "parent" : SpanHelpers.IsAllZero(s) ? "zeros" : "other bytes";
            _output.WriteLine($"{VhdxBatEntry.StateName(states[block])}: ours {Describe(mine)}, vhdimount {Describe(libvhdi)}");
            if (states[block] == VhdxBatEntry.NotPresent)
            {
                Assert.True(mine.AsSpan().SequenceEqual(parent.Span), "NOT_PRESENT must read the parent");
                Assert.True(libvhdi.SequenceEqual(parent.Span), "vhdimount must read the parent for NOT_PRESENT");
            }
            else Assert.True(SpanHelpers.IsAllZero(mine), $"{VhdxBatEntry.StateName(states[block])} must read as zeros");
        }
        // Outside the patched blocks the two readers agree byte for byte (block 5 holds the partial write).
        VhdxTestUtil.AssertSameAsRaw(ours, copy, from: states.Length * (long)Mb);
    }

    [Fact]
    public void The_locator_also_names_the_parent_by_absolute_path_so_a_moved_child_still_finds_it()
    {
        using var dir = new TempDirectory("vhdimount");
        var basePath = dir.File("base.vhdx");
        var child = dir.File("child.vhdx");
        DiskImage.Create(basePath, new ImageCreateOptions(Size, BlockSize: 1 << 20)).Dispose();
        using (var b = DiskImage.Open(basePath, OpenOptions.ReadWrite)) b.Write(4097, [1, 2, 3]);
        DiskImage.CreateDifferencing(child, basePath).Dispose();
        string full = Path.GetFullPath(basePath);
        using (var c = DiskImage.OpenLayer(child, false))
        {
            // relative_path stays first in our resolution order (MS-VHDX 2.6.2.6.3); the absolute path is the fallback.
            Assert.Equal(full, c.ParentLink!.CandidatePaths[0]);
            if (!OperatingSystem.IsWindows())
            {
                Assert.Contains(c.Details, d => d.Key == "parent locator absolute_win32_path" && d.Value == full.Replace('/', '\\'));
                Assert.Equal(full, c.ParentLink.CandidatePaths[1]);
            }
        }
        // Moved one folder down, ".\base.vhdx" names nothing; the absolute path still finds the parent.
        var moved = Path.Combine(dir.Path, "sub", "child.vhdx");
        Directory.CreateDirectory(Path.GetDirectoryName(moved)!);
        File.Move(child, moved);
        using var chain = DiskImage.Open(moved);
        Assert.Equal(2, chain.Layers.Count);
        var buf = new byte[3];
        chain.Read(4097, buf);
        Assert.Equal(new byte[] { 1, 2, 3 }, buf);
    }
}
