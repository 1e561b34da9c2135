using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Formats.Vdi;

/// <summary>Real VDI files written by qemu-img and by VirtualBox (../shared/fixtures).</summary>
public sealed class VdiFixtureTests
{
    [SharedFixtureFact]
    public void Basic_vdi_from_qemu_reads_with_the_published_content_hash()
    {
        using var dir = new TempDirectory("vdi-fx");
        var path = SharedFixtures.Extract("basic.vdi.gz", dir.Path);
        using var chain = DiskImage.Open(path);
        Assert.Equal(ImageFormat.Vdi, chain.Top.Format);
        Assert.Equal(ImageType.Dynamic, chain.Top.Type);
        Assert.Equal(10485760, chain.VirtualSize);
        Assert.Equal(1 << 20, chain.Top.BlockSize);
        Assert.Equal("92d551781f9b62f3c8601ffd375cc7547efb1127e3cd2acc652f50f2d31afb8c", ContentHash.Of(chain));
        Assert.True(chain.Check().IsClean, string.Join("\n", chain.Check().Problems));
    }

    [SharedFixtureFact]
    public void VirtualBox_differencing_child_finds_its_renamed_parent_by_uuid_and_reads_zeros()
    {
        using var dir = new TempDirectory("vdi-fx");
        var child = SharedFixtures.Extract("virtualbox-diff-child.vdi.gz", dir.Path);
        var parent = SharedFixtures.Extract("virtualbox-parent.vdi.gz", dir.Path);
        using var chain = DiskImage.Open(child);
        Assert.Equal(2, chain.Layers.Count);
        Assert.Equal(parent, chain.Layers[1].Path);
        Assert.Equal(ImageType.Differencing, chain.Top.Type);
        Assert.Equal(1073741824, chain.VirtualSize);
        // Both layers are empty: the extents prove it without reading 1 GiB.
        var extents = chain.GetExtents(0, chain.VirtualSize).ToList();
        Assert.All(extents, e => Assert.NotEqual(ExtentKind.Data, e.Kind));
        var buffer = new byte[1 << 20];
        chain.Read(chain.VirtualSize - buffer.Length, buffer);
        Assert.True(buffer.All(b => b == 0));
        Assert.False(chain.Check().HasErrors, string.Join("\n", chain.Check().Problems));
    }

    [SharedFixtureFact]
    public void VirtualBox_differencing_child_header_fields_match_the_readme()
    {
        using var dir = new TempDirectory("vdi-fx");
        var child = SharedFixtures.Extract("virtualbox-diff-child.vdi.gz", dir.Path);
        var parentPath = SharedFixtures.Extract("virtualbox-parent.vdi.gz", dir.Path);
        using var layer = DiskImage.OpenLayer(child, writable: false);
        using var parent = DiskImage.OpenLayer(parentPath, writable: false);
        var d = VdiTestKit.DetailsOf(layer);
        Assert.Equal("1.1", d["version"]);
        Assert.Equal("400", d["cbHeader"]);
        Assert.Equal("4", d["u32Type"]);
        Assert.Equal((1 << 20).ToString(), d["offBlocks"]);
        Assert.Equal((2 << 20).ToString(), d["offData"]);
        Assert.Equal("1073741824", d["cbDisk"]);
        Assert.Equal("8530c0c4-1d0b-431a-aa40-fa118872f022", d["uuidCreate"]);
        Assert.Equal("45ec18d9-39c5-4079-8de1-e36437901627", d["uuidLinkage"]);
        Assert.Equal("f2d8ca6c-e55f-4ee4-8b90-baa11fa07e29", d["uuidParentModify"]);
        Assert.Contains("Oracle VM VirtualBox", d["szFileInfo"]);
        Assert.Equal(new Guid("45ec18d9-39c5-4079-8de1-e36437901627"), parent.Identity.Id);
        Assert.Equal(new Guid("f2d8ca6c-e55f-4ee4-8b90-baa11fa07e29"), parent.Identity.Version);
        var link = layer.ParentLink!;
        Assert.Empty(link.CandidatePaths);
        Assert.Equal(parent.Identity.Id, link.ParentId);
        Assert.Equal(parent.Identity.Version, link.ParentVersion);
        Assert.Equal("uuidParentModify", link.VersionName);
        Assert.Equal("384", VdiTestKit.DetailsOf(parent)["cbHeader"]);
    }

    [SharedFixtureFact]
    public void VirtualBox_child_opened_for_writing_without_changes_is_left_byte_identical()
    {
        using var dir = new TempDirectory("vdi-fx");
        var child = SharedFixtures.Extract("virtualbox-diff-child.vdi.gz", dir.Path);
        SharedFixtures.Extract("virtualbox-parent.vdi.gz", dir.Path);
        string before = ContentHash.OfFile(child);
        using (var chain = DiskImage.Open(child, OpenOptions.ReadWrite))
        {
            var b = new byte[4096];
            chain.Read(123 * 4096, b);
            chain.Flush();
        }
        Assert.Equal(before, ContentHash.OfFile(child));
    }

    [SharedFixtureFact]
    public void Writing_into_the_VirtualBox_child_keeps_its_header_layout_and_reads_back()
    {
        using var dir = new TempDirectory("vdi-fx");
        var child = SharedFixtures.Extract("virtualbox-diff-child.vdi.gz", dir.Path);
        SharedFixtures.Extract("virtualbox-parent.vdi.gz", dir.Path);
        var headBefore = File.ReadAllBytes(child).AsSpan(0, 512).ToArray();
        var data = RandomData.Bytes(70000, 11);
        using (var chain = DiskImage.Open(child, OpenOptions.ReadWrite)) chain.Write(500L << 20, data);
        var headAfter = File.ReadAllBytes(child).AsSpan(0, 512).ToArray();
        // Only cBlocksAllocated (388..391) and uuidModify (408..423) change; the text, cbHeader 400, LCHS geometry stay.
        for (int i = 0; i < 512; i++)
            if (i is not (>= 388 and < 392) and not (>= 408 and < 424))
                Assert.True(headBefore[i] == headAfter[i], $"header byte {i} changed");
        Assert.Equal(1u, BitConverter.ToUInt32(headAfter, 388));
        using var reopened = DiskImage.Open(child);
        var back = new byte[data.Length];
        reopened.Read(500L << 20, back);
        Assert.Equal(data, back);
        Assert.True(reopened.Check().IsClean, string.Join("\n", reopened.Check().Problems));
    }
}
