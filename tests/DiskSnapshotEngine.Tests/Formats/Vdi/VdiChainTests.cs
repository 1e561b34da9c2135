using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Hypervisors.VirtualBox;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Formats.Vdi;

/// <summary>Base, child and grandchild VDI: content, change detection, and finding a parent named only by uuid.</summary>
public sealed class VdiChainTests
{
    private const long Size = 16L * VdiTestKit.MiB;

    private sealed class Fixture : IDisposable
    {
        public readonly TempDirectory Dir = new("vdi-chain");
        public readonly byte[] Base = new byte[Size], Child = new byte[Size], Grand = new byte[Size];
        public string BasePath => Dir.File("base.vdi");
        public string ChildPath => Dir.File("child.vdi");
        public string GrandPath => Dir.File("grand.vdi");

        public Fixture()
        {
            using (VdiTestKit.CreateVdi(BasePath, Size)) { }
            Apply(BasePath, Base, 1, (0, 3 * VdiTestKit.MiB), (5 * VdiTestKit.MiB + 17, 1000), (Size - 4096, 4096));
            Base.CopyTo(Child, 0);
            using (DiskImage.CreateDifferencing(ChildPath, BasePath)) { }
            Apply(ChildPath, Child, 2, (VdiTestKit.MiB + 333, 2 * VdiTestKit.MiB), (9 * VdiTestKit.MiB, 4096));
            ZeroIn(ChildPath, Child, 0, VdiTestKit.MiB);
            Child.CopyTo(Grand, 0);
            using (DiskImage.CreateDifferencing(GrandPath, ChildPath)) { }
            Apply(GrandPath, Grand, 3, (7, 511), (12 * VdiTestKit.MiB - 100, 200), (Size - 1, 1));
        }

        private static void Apply(string path, byte[] model, int seed, params (long At, int Len)[] writes)
        {
            var rng = new Random(seed);
            using var chain = DiskImage.Open(path, OpenOptions.ReadWrite);
            foreach (var (at, len) in writes)
            {
                var data = new byte[len];
                rng.NextBytes(data);
                chain.Write(at, data);
                data.CopyTo(model, at);
            }
        }

        private static void ZeroIn(string path, byte[] model, long at, long len)
        {
            using var chain = DiskImage.Open(path, OpenOptions.ReadWrite);
            chain.WriteZeroes(at, len);
            Array.Clear(model, (int)at, (int)len);
        }

        public void Dispose() => Dir.Dispose();
    }

    private static void AssertContent(string path, byte[] expected, OpenOptions? options = null)
    {
        using var chain = DiskImage.Open(path, options);
        var actual = new byte[chain.VirtualSize];
        chain.Read(0, actual);
        Assert.True(expected.AsSpan().SequenceEqual(actual), $"content of {path} differs from the model");
        Assert.False(chain.Check().HasErrors, string.Join("\n", chain.Check().Problems));
    }

    [Fact]
    public void Base_child_and_grandchild_show_their_own_content()
    {
        using var f = new Fixture();
        AssertContent(f.BasePath, f.Base);
        AssertContent(f.ChildPath, f.Child);
        AssertContent(f.GrandPath, f.Grand);
        using var chain = DiskImage.Open(f.GrandPath);
        Assert.Equal(3, chain.Layers.Count);
        Assert.Equal(new[] { f.GrandPath, f.ChildPath, f.BasePath }, chain.Layers.Select(l => l.Path));
        // The child's ZERO block hides the base's data: the extents say so without reading.
        using var childChain = DiskImage.Open(f.ChildPath);
        var first = childChain.GetExtents(VdiTestKit.MiB / 2, 4096).Single();
        Assert.Equal(ExtentKind.Zero, first.Kind);
        Assert.Equal(0, first.LayerIndex);
        Assert.Equal(ExtentKind.Data, childChain.Layers[1].GetStatus(VdiTestKit.MiB / 2, 4096).Kind);
    }

    [Fact]
    public void Exports_are_byte_identical_to_the_expected_content()
    {
        using var f = new Fixture();
        foreach (var (path, model) in new[] { (f.BasePath, f.Base), (f.ChildPath, f.Child), (f.GrandPath, f.Grand) })
        {
            string raw = path + ".raw";
            using (var chain = DiskImage.Open(path)) VdiTestKit.ExportRaw(chain, raw);
            Assert.Equal(ContentHash.Of(model), ContentHash.OfFile(raw));
        }
    }

    [Fact]
    public void Modifying_the_base_afterwards_makes_the_grandchild_fail_with_ParentMismatch_naming_both_uuids_and_files()
    {
        using var f = new Fixture();
        Guid before, recorded;
        using (var b = DiskImage.OpenLayer(f.BasePath, false)) before = b.Identity.Version;
        using (var c = DiskImage.OpenLayer(f.ChildPath, false)) recorded = c.ParentLink!.ParentVersion!.Value;
        Assert.Equal(before, recorded);

        // The base is sealed by its child; the write is forced, as a user overriding the seal would.
        using (var chain = DiskImage.Open(f.BasePath, OpenOptions.ReadWrite with { Sealed = SealPolicy.Override })) chain.Write(4096, new byte[] { 42 });
        Guid after;
        using (var b = DiskImage.OpenLayer(f.BasePath, false)) after = b.Identity.Version;
        Assert.NotEqual(before, after);

        var e = Assert.Throws<DiskImageException>(() => DiskImage.Open(f.GrandPath).Dispose());
        Assert.Equal(ErrorKind.ParentMismatch, e.Kind);
        Assert.Contains(recorded.ToString(), e.Message);
        Assert.Contains(after.ToString(), e.Message);
        Assert.Contains(f.ChildPath, e.Message);
        Assert.Contains(f.BasePath, e.Message);
        Assert.Contains("uuidParentModify", e.Message);
    }

    [Fact]
    public void A_child_moved_to_another_folder_still_finds_its_parent_through_its_locator()
    {
        using var f = new Fixture();
        using var other = new TempDirectory("vdi-moved");
        string moved = other.File("grand.vdi");
        File.Move(f.GrandPath, moved);
        AssertContent(moved, f.Grand);
    }

    [Fact]
    public void A_moved_parent_is_found_with_SearchPaths()
    {
        using var f = new Fixture();
        using var other = new TempDirectory("vdi-moved");
        string moved = other.File("grand.vdi"), movedParent = other.File("sub/child-copy.vdi");
        File.Move(f.GrandPath, moved);
        Directory.CreateDirectory(Path.GetDirectoryName(movedParent)!);
        File.Move(f.ChildPath, movedParent);

        var e = Assert.Throws<DiskImageException>(() => DiskImage.Open(moved).Dispose());
        Assert.Equal(ErrorKind.ParentNotFound, e.Kind);
        Assert.Contains(other.Path, e.Message); // says where it looked
        Assert.Contains(f.ChildPath, e.Message); // including the path its locator names

        AssertContent(moved, f.Grand, new OpenOptions { SearchPaths = new[] { Path.GetDirectoryName(movedParent)! } });
    }

    [Fact]
    public void A_child_moved_away_is_found_through_a_vbox_media_registry()
    {
        using var f = new Fixture();
        using var other = new TempDirectory("vdi-moved");
        string moved = other.File("grand.vdi");
        File.Move(f.GrandPath, moved);
        Guid childId, baseId;
        using (var c = DiskImage.OpenLayer(f.ChildPath, false)) childId = c.Identity.Id;
        using (var b = DiskImage.OpenLayer(f.BasePath, false)) baseId = b.Identity.Id;
        // The parent moves too (into a folder nothing else names), so only the registry can tell where it is.
        Directory.CreateDirectory(f.Dir.File("sub"));
        File.Move(f.ChildPath, f.Dir.File("sub/child.vdi"));

        // A machine folder with its .vbox registry; locations are relative to it, as VirtualBox writes them.
        string vbox = f.Dir.File("machine.vbox");
        File.WriteAllText(vbox, $$"""
            <?xml version="1.0"?>
            <VirtualBox xmlns="http://www.virtualbox.org/" version="1.19-linux">
              <Machine uuid="{{{Guid.NewGuid()}}}" name="m" OSType="Linux_64">
                <MediaRegistry>
                  <HardDisks>
                    <HardDisk uuid="{{{baseId}}}" location="base.vdi" format="VDI" type="Normal">
                      <HardDisk uuid="{{{childId}}}" location="sub/child.vdi" format="VDI"/>
                    </HardDisk>
                  </HardDisks>
                </MediaRegistry>
              </Machine>
            </VirtualBox>
            """);
        var registry = new VirtualBoxMediaRegistry(vbox);
        AssertContent(moved, f.Grand, new OpenOptions { LocationSources = new IParentLocationSource[] { registry } });
    }

    /// <summary>
    /// The parent is renamed by another process after the child's folder was listed and before the search reached
    /// it (what a snapshot delete does when it renames a merged layer into place). The search notices that the
    /// folder changed and looks again, instead of reporting a parent that is there as missing.
    /// </summary>
    [Fact]
    public void A_parent_renamed_during_the_identity_search_is_still_found()
    {
        using var dir = new TempDirectory("vdi-rename-race");
        string parent = dir.File("z-parent.vdi"), child = dir.File("child.vdi"), other = dir.File("b-other.vdi");
        var model = new byte[Size];
        Operations.OpsKit.CreateBase(parent, Size);
        Operations.OpsKit.RandomWrites(parent, new Random(81), 3, model);
        Operations.OpsKit.CreateChild(child, parent);
        Operations.OpsKit.CreateBase(other, Size);
        // As VirtualBox makes it: a child that names its parent by identity only, so the folder search is what runs.
        VdiTestKit.RemoveLocator(child);

        bool renamed = false;
        DiskSnapshotEngine.IO.IImageFile Opener(string path, bool writable)
        {
            // b-other.vdi is opened after the folder was listed and before z-parent.vdi is tried.
            if (!renamed && path == other)
            {
                File.Move(parent, dir.File("m-parent.vdi"));
                renamed = true;
            }
            return DiskSnapshotEngine.IO.ImageFile.Open(path, writable);
        }
        using (var chain = DiskImage.Open(child, OpenOptions.ReadOnly with { FileOpener = Opener }))
        {
            Assert.True(renamed, "the rename did not happen during the search");
            Assert.Equal(dir.File("m-parent.vdi"), chain.Layers[1].Path);
            var read = new byte[Size];
            chain.Read(0, read);
            Assert.True(read.AsSpan().SequenceEqual(model), "the chain reads other content than the parent's");
        }

        // A parent that is really gone is reported after one pass, naming where it looked.
        File.Delete(dir.File("m-parent.vdi"));
        var e = Assert.Throws<DiskImageException>(() => DiskImage.Open(child, OpenOptions.ReadOnly));
        Assert.Equal(ErrorKind.ParentNotFound, e.Kind);
        Assert.Contains(dir.Path, e.Message);
    }
}
