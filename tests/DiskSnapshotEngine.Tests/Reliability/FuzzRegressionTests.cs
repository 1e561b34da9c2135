using System.Text;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Reliability;

/// <summary>Inputs the mutation fuzzer found, rebuilt by hand so each stays fixed.</summary>
public class FuzzRegressionTests
{
    [Fact]
    public void A_vhdx_parent_locator_path_holding_a_NUL_is_corruption_not_a_crash()
    {
        using var dir = new TempDirectory();
        var parent = dir.File("parent.vhdx");
        var child = dir.File("child.vhdx");
        DiskImage.Create(parent, new ImageCreateOptions(8L << 20)).Dispose();
        DiskImage.CreateDifferencing(child, parent).Dispose();

        // The locator stores relative_path as UTF-16 ".\parent.vhdx"; the metadata region has no checksum to fix up.
        var bytes = File.ReadAllBytes(child);
        var needle = Encoding.Unicode.GetBytes("parent.vhdx");
        int at = bytes.AsSpan().IndexOf(needle);
        Assert.True(at > 0, "relative_path not found in the child");
        bytes[at + 2] = 0;
        bytes[at + 3] = 0;
        File.WriteAllBytes(child, bytes);

        var ex = Assert.Throws<DiskImageException>(() => DiskImage.Open(child).Dispose());
        Assert.Equal(ErrorKind.CorruptImage, ex.Kind);
        Assert.Contains("relative_path", ex.Message);
        Assert.Equal(bytes, File.ReadAllBytes(child));
    }

    [Fact]
    public void A_path_with_a_NUL_is_a_typed_error_everywhere()
    {
        var ex = Assert.Throws<DiskImageException>(() => DiskImage.OpenLayer("bad\0name.vhdx", writable: false));
        Assert.Equal(ErrorKind.FileNotFound, ex.Kind);
    }
}
