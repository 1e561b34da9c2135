using System.Buffers.Binary;
using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Formats;

/// <summary>Issue 10 §5.6: header fields and options that were accepted although they cannot be right.</summary>
public class HeaderFieldLimitTests
{
    private static DiskImageException Expect(ErrorKind kind, Action action)
    {
        var e = Assert.Throws<DiskImageException>(action);
        Assert.Equal(kind, e.Kind);
        return e;
    }

    [Fact]
    public void A_vdi_header_size_of_0xFFFFFFFF_is_refused()
    {
        using var dir = new TempDirectory("vdi-cbheader");
        string path = dir.File("v.vdi");
        DiskImage.Create(path, new ImageCreateOptions(8L << 20)).Dispose();
        var bytes = File.ReadAllBytes(path);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(72), 0xFFFFFFFF);
        File.WriteAllBytes(path, bytes);
        var e = Expect(ErrorKind.CorruptImage, () => DiskImage.OpenLayer(path, writable: false).Dispose());
        Assert.Contains("inside the header", e.Detail);
        Assert.Equal(bytes, File.ReadAllBytes(path));
    }

    [Fact]
    public void A_vhdx_parent_locator_with_a_duplicated_key_is_corrupt()
    {
        using var dir = new TempDirectory("vhdx-dupkey");
        string parent = dir.File("p.vhdx"), child = dir.File("c.vhdx");
        DiskImage.Create(parent, new ImageCreateOptions(8L << 20)).Dispose();
        DiskImage.CreateDifferencing(child, parent, sealParentAs: SealReasons.None).Dispose();
        var bytes = File.ReadAllBytes(child);
        // MS-VHDX 2.6.2.6: LocatorType GUID, Reserved(2), KeyValueCount(2), then 12-byte entries (KeyOffset, ValueOffset, KeyLength, ValueLength).
        int at = bytes.AsSpan().IndexOf(new Guid("B04AEFB7-D19E-4A81-B789-25B8E9445913").ToByteArray());
        Assert.True(at > 0);
        int count = BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(at + 18));
        Assert.True(count >= 2);
        // The last entry's key becomes the first entry's key.
        var first = bytes.AsSpan(at + 20, 12);
        var last = bytes.AsSpan(at + 20 + 12 * (count - 1), 12);
        first[..4].CopyTo(last);
        first.Slice(8, 2).CopyTo(last[8..]);
        File.WriteAllBytes(child, bytes);
        var e = Expect(ErrorKind.CorruptImage, () => DiskImage.OpenLayer(child, writable: false).Dispose());
        Assert.Contains("appears twice", e.Detail);
    }

    [Fact]
    public async Task Block_size_for_a_raw_image_is_refused_and_nothing_is_left()
    {
        using var dir = new TempDirectory("raw-blocksize");
        var r = await CliRunner.RunAsync("create", dir.File("r.raw"), "--size", "8M", "--block-size", "1M");
        Assert.Equal(14, r.ExitCode);
        Assert.Contains("--block-size does not apply", r.StdErr);
        Assert.False(File.Exists(dir.File("r.raw")));
    }

    [Fact]
    public void A_child_of_a_chain_already_256_deep_is_refused_at_creation()
    {
        using var dir = new TempDirectory("deep-chain");
        string top = dir.File("l0.vdi");
        DiskImage.Create(top, new ImageCreateOptions(1L << 20, BlockSize: 1 << 20)).Dispose();
        for (int i = 1; i < ChainRules.MaxDepth; i++)
        {
            string next = dir.File($"l{i}.vdi");
            DiskImage.CreateDifferencing(next, top, sealParentAs: SealReasons.None).Dispose();
            top = next;
        }
        using (var chain = DiskImage.Open(top)) Assert.Equal(ChainRules.MaxDepth, chain.Layers.Count);
        string tooDeep = dir.File("deep.vdi");
        var e = Expect(ErrorKind.ChainInvalid, () => DiskImage.CreateDifferencing(tooDeep, top, sealParentAs: SealReasons.None).Dispose());
        Assert.Contains("256 images deep", e.Detail);
        Assert.False(File.Exists(tooDeep));
    }
    /// <summary>A parent whose chain loops (qemu-img rebase -u can make one) gets no child, and its file is not sealed.</summary>
    [RequiresToolFact("qemu-img")]
    public async Task A_child_of_a_looping_chain_is_refused_and_the_parent_is_unchanged()
    {
        using var dir = new TempDirectory("loop-chain");
        string a = dir.File("a.qcow2"), b = dir.File("b.qcow2"), c = dir.File("c.qcow2");
        DiskImage.Create(a, new ImageCreateOptions(1L << 20)).Dispose();
        DiskImage.CreateDifferencing(b, a, sealParentAs: SealReasons.None).Dispose();
        ExternalTool.RunChecked("qemu-img", "rebase", "-u", "-f", "qcow2", "-b", "b.qcow2", "-F", "qcow2", a);
        var bytes = File.ReadAllBytes(b);
        var r = await CliRunner.RunAsync("create", c, "--parent", b);
        Assert.True(r.ExitCode == 11, r.ToString());
        Assert.Contains("loops", r.StdErr);
        Assert.False(File.Exists(c));
        Assert.Equal(bytes, File.ReadAllBytes(b));
    }
}
