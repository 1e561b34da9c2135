using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.Operations;
using DiskSnapshotEngine.Tests.Formats.Qcow2;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Operations;

/// <summary>
/// The rewrite frame itself: <see cref="ImageRewrite.CreateTarget"/> refuses what the new file would drop
/// (<see cref="IRewriteLoss"/>) even for a verb that did not ask first, naming the verb, and leaves nothing behind.
/// </summary>
public class ImageRewriteTests
{
    [RequiresToolFact("qemu-img")]
    public void CreateTarget_refuses_an_image_whose_internal_snapshot_the_new_file_would_drop()
    {
        using var dir = new TempDirectory("rewrite");
        string image = dir.File("d.qcow2");
        Qcow2TestKit.QemuImg("create", "-f", "qcow2", image, "8M");
        Qcow2TestKit.QemuImg("snapshot", "-c", "s1", image);
        var before = File.ReadAllBytes(image);
        using (var rewrite = ImageRewrite.Begin(image, OpenOptions.ReadOnly, ".dse-test", "compact"))
        {
            var e = Assert.Throws<DiskImageException>(() => rewrite.CreateTarget(new ImageCreateOptions(8 << 20), null));
            Assert.Equal(ErrorKind.Unsupported, e.Kind);
            Assert.Contains("compact rewrites the image into a new file, which would drop its 1 internal snapshot(s)", e.Message);
        }
        Assert.Equal(new[] { image }, Directory.GetFiles(dir.Path));
        Assert.Equal(before, File.ReadAllBytes(image));
    }
}
