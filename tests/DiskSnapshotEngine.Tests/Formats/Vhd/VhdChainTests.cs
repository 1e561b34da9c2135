using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.Formats.Vhd;
using DiskSnapshotEngine.IO;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Formats.Vhd;

/// <summary>
/// Differencing VHD chains: written and read by us, read by libvhdi (vhdiinfo; vhdimount through FUSE, which finds
/// each parent by the Parent Unicode Name in the child's folder and checks the Parent Unique ID), parents found through
/// every locator kind we write, a wrong parent refused, and a relink that keeps everything readable.
/// </summary>
public sealed class VhdChainTests : IDisposable
{
    private const int MiB = VhdTestKit.MiB;
    private const long Size = 12L * MiB;
    private readonly TempDirectory _dir = new("vhd-chain");

    public void Dispose() => _dir.Dispose();

    private static void RandomWrites(string image, Random rng, int count)
    {
        using var chain = DiskImage.Open(image, OpenOptions.ReadWrite);
        for (int i = 0; i < count; i++)
        {
            long off = rng.NextInt64(0, Size - 1);
            int len = (int)Math.Min(Size - off, rng.Next(1, 300_000));
            if (rng.Next(6) == 0)
            {
                long start = SpanHelpers.AlignDown(off, 512), end = Math.Min(Size, SpanHelpers.AlignUp(off + len, 512));
                chain.WriteZeroes(start, end - start);
            }
            else chain.Write(off, RandomData.Bytes(len, rng.Next()));
        }
    }

    /// <summary>base (2 MiB blocks) - child (512 KiB blocks) - grandchild (4 MiB blocks), each written at random.</summary>
    private string[] ThreeLayers(int seed)
    {
        var layers = new[] { _dir.File("base.vhd"), _dir.File("child.vhd"), _dir.File("grandchild.vhd") };
        var rng = new Random(seed);
        DiskImage.Create(layers[0], new ImageCreateOptions(Size)).Dispose();
        RandomWrites(layers[0], rng, 12);
        for (int i = 1; i < 3; i++)
        {
            using (var parent = DiskImage.OpenLayer(layers[i - 1], false))
                new VhdDriver().Create(ImageFile.Create(layers[i]),
                    new ImageCreateOptions(Size, ImageType.Differencing, i == 1 ? 512 << 10 : 4 << 20), ParentDescriptor.Of(parent)).Dispose();
            RandomWrites(layers[i], rng, 12);
        }
        return layers;
    }

    [RequiresToolFact("vhdiinfo")]
    public void Vhdiinfo_reads_our_differencing_disk_and_its_parent_link()
    {
        var layers = ThreeLayers(1);
        string info = ExternalTool.RunChecked("vhdiinfo", layers[1]);
        Assert.Contains("Differential", info);
        Assert.Contains($"{Size} bytes", info);
        using var child = DiskImage.OpenLayer(layers[1], false);
        using var parent = DiskImage.OpenLayer(layers[0], false);
        // libvhdi prints the 16 stored bytes as a big-endian GUID; we read them as Windows and VirtualBox do.
        string BigEndian(Guid g) => new Guid(g.ToByteArray(), bigEndian: true).ToString();
        Assert.Contains($"Identifier\t\t: {BigEndian(child.Identity.Id)}", info);
        Assert.Contains($"Parent identifier\t: {BigEndian(parent.Identity.Id)}", info);
        Assert.Contains("Parent filename\t\t: base.vhd", info);
    }

    [RequiresFuseMountFact("vhdimount")]
    public void Vhdimount_reads_every_layer_of_our_three_layer_chain_byte_for_byte()
    {
        var layers = ThreeLayers(2);
        using var mount = FuseMount.Mount("vhdimount", layers[2], _dir.File("mnt"));
        Assert.Equal(["vhdi1", "vhdi2", "vhdi3"], mount.List());
        var hashes = new List<string>();
        for (int i = 0; i < layers.Length; i++)
        {
            string copy = _dir.File($"vhdi{i + 1}.raw");
            mount.CopyOut($"vhdi{i + 1}", copy);
            using var chain = DiskImage.Open(layers[i]);
            Assert.Equal(i + 1, chain.Layers.Count);
            Assert.Equal(ContentHash.OfFile(copy), ContentHash.Of(chain));
            hashes.Add(ContentHash.OfFile(copy));
        }
        // Each layer changed the disk, so a reader that skipped a layer (or read the wrong one) cannot pass.
        Assert.Equal(3, hashes.Distinct().Count());
    }

    [Fact]
    public void Each_locator_kind_finds_the_parent_and_they_are_tried_relative_first()
    {
        var layers = ThreeLayers(3);
        string expected;
        using (var chain = DiskImage.Open(layers[1])) expected = ContentHash.Of(chain);
        using (var child = DiskImage.OpenLayer(layers[1], false))
        {
            var candidates = child.ParentLink!.CandidatePaths;
            // W2ru (relative), W2ku and MacX (absolute), then the Parent Unicode Name: the same file, found four ways.
            Assert.Equal(Path.GetFullPath(layers[0]), candidates[0]);
            Assert.All(candidates, c => Assert.Equal(Path.GetFullPath(layers[0]), c));
            var details = child.Details.ToDictionary(d => d.Key, d => d.Value);
            Assert.Equal(".\\base.vhd", details["Parent Locator Entry 0 path"]);
            Assert.Equal("W2ku", details["Parent Locator Entry 1 Platform Code"]);
            Assert.Equal(new Uri(Path.GetFullPath(layers[0])).AbsoluteUri, details["Parent Locator Entry 2 path"]);
        }

        // The child alone moved to another folder: the relative path names nothing; the absolute ones find the parent.
        string moved = Path.Combine(_dir.Path, "sub", "child.vhd");
        Directory.CreateDirectory(Path.GetDirectoryName(moved)!);
        File.Move(layers[1], moved);
        using (var chain = DiskImage.Open(moved)) Assert.Equal(expected, ContentHash.Of(chain));

        // Both moved together to a new folder: the absolute paths name nothing; the relative one (and the name) still work.
        string other = Path.Combine(Path.GetTempPath(), $"dse-vhd-moved-{Guid.NewGuid():N}");
        Directory.CreateDirectory(other);
        try
        {
            File.Move(moved, Path.Combine(other, "child.vhd"));
            File.Move(layers[0], Path.Combine(other, "base.vhd"));
            using var chain = DiskImage.Open(Path.Combine(other, "child.vhd"));
            Assert.Equal(expected, ContentHash.Of(chain));
        }
        finally
        {
            Directory.Delete(other, recursive: true);
        }
    }

    [Fact]
    public void Another_VHD_in_the_parent_s_place_is_refused_with_ParentMismatch()
    {
        var layers = ThreeLayers(4);
        File.Delete(layers[0]);
        DiskImage.Create(layers[0], new ImageCreateOptions(Size)).Dispose();
        var e = Assert.Throws<DiskImageException>(() => DiskImage.Open(layers[1]).Dispose());
        Assert.Equal(ErrorKind.ParentMismatch, e.Kind);
        Assert.Contains("Parent Unique ID", e.Message);
        using var forced = DiskImage.Open(layers[1], OpenOptions.ReadOnly with { IgnoreParentMismatch = true });
        Assert.Equal(2, forced.Layers.Count);
    }

    [Fact]
    public void A_relink_writes_new_locators_at_the_end_and_the_old_ones_become_a_leak()
    {
        var layers = ThreeLayers(5);
        string copy = _dir.File("base-copy.vhd");
        File.Copy(layers[0], copy);
        string expected;
        using (var chain = DiskImage.Open(layers[1])) expected = ContentHash.Of(chain);
        long before = new FileInfo(layers[1]).Length;
        using (var child = DiskImage.OpenLayer(layers[1], true))
        using (var parent = DiskImage.OpenLayer(copy, false))
            child.SetParent(ParentDescriptor.Of(parent));
        File.Delete(layers[0]);
        Assert.True(new FileInfo(layers[1]).Length > before);
        using (var chain = DiskImage.Open(layers[1]))
        {
            Assert.Equal(Path.GetFullPath(copy), chain.Layers[1].Path);
            Assert.Equal(expected, ContentHash.Of(chain));
            var report = chain.Check();
            Assert.False(report.HasErrors, string.Join("\n", report.Problems));
            Assert.Contains(report.Problems, p => p.Severity == CheckSeverity.Leak);
        }
        using var layer = DiskImage.OpenLayer(layers[1], false);
        Assert.Equal("base-copy.vhd", layer.Details.Single(d => d.Key == "Parent Unicode Name").Value);
    }

    [RequiresToolFact("qemu-img")]
    public void A_child_of_a_qemu_made_parent_reads_through_it()
    {
        string raw = _dir.File("src.raw"), parent = _dir.File("q.vhd"), child = _dir.File("c.vhd");
        VhdTestKit.WriteRaw(raw, 8L * MiB, 6);
        VhdTestKit.QemuConvert(raw, parent, "dynamic", forceSize: true);
        DiskImage.CreateDifferencing(child, parent).Dispose();
        using var chain = DiskImage.Open(child);
        Assert.Equal(ContentHash.OfFile(raw), ContentHash.Of(chain));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_relink_header_torn_between_its_two_sectors_reads_as_the_old_or_the_new_link(bool newSecondSector)
    {
        var layers = ThreeLayers(7);
        string other = _dir.File("other.vhd");
        await DiskSnapshotEngine.Operations.FullClone.RunAsync(layers[0], other);
        string expected;
        using (var chain = DiskImage.Open(layers[1])) expected = ContentHash.Of(chain);
        var oldHeader = VhdTestKit.ReadAt(layers[1], 512, 1024);
        using (var child = DiskImage.OpenLayer(layers[1], true))
        using (var parent = DiskImage.OpenLayer(other, false))
            child.SetParent(ParentDescriptor.Of(parent));
        var newHeader = VhdTestKit.ReadAt(layers[1], 512, 1024);
        Assert.NotEqual(oldHeader, newHeader);

        // A crash tore the header write: one 512-byte sector is new, the other old (the checksum matches neither).
        var torn = newSecondSector ? oldHeader[..512].Concat(newHeader[512..]).ToArray() : newHeader[..512].Concat(oldHeader[512..]).ToArray();
        VhdTestKit.Patch(layers[1], 512, torn);
        string tornHash = ContentHash.OfFile(layers[1]);
        string parentOfVersion = Path.GetFullPath(newSecondSector ? other : layers[0]);
        using (var chain = DiskImage.Open(layers[1]))
        {
            Assert.Equal(parentOfVersion, chain.Layers[1].Path);
            Assert.Equal(expected, ContentHash.Of(chain));
            Assert.Contains(chain.Check().Problems, p => p.Structure == "dynamic disk header" && p.Message.Contains("torn"));
        }
        Assert.Equal(tornHash, ContentHash.OfFile(layers[1]));

        // The next change puts the whole header back.
        using (var chain = DiskImage.Open(layers[1], OpenOptions.ReadWrite)) chain.Write(0, RandomData.Bytes(4096, 8));
        Assert.Equal(newSecondSector ? newHeader : oldHeader, VhdTestKit.ReadAt(layers[1], 512, 1024));
        using (var chain = DiskImage.Open(layers[1])) Assert.False(chain.Check().HasErrors, string.Join("\n", chain.Check().Problems));
    }
}
