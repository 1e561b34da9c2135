using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Reliability;

/// <summary>Running out of space on a real small file system: a typed error, nothing half-made, old content intact.</summary>
public class DiskFullTests
{
    private static readonly string[] Extensions = { ".img", ".vhdx", ".vdi" };

    [RequiresMountFact]
    public void Creating_a_fixed_image_larger_than_the_disk_fails_cleanly()
    {
        foreach (var ext in Extensions)
        {
            using var fs = SmallFileSystem.TryMount(8)!;
            var path = fs.File("big" + ext);
            var ex = Assert.Throws<DiskImageException>(() => DiskImage.Create(path, new ImageCreateOptions(64L << 20, ImageType.Fixed)));
            Assert.True(ex.Kind == ErrorKind.DiskFull, $"{ext}: {ex.Kind}: {ex.Message}");
            Assert.Contains("no space", ex.Message);
            Assert.False(File.Exists(path), $"{ext}: a partial image was left behind");
        }
    }

    [RequiresMountFact]
    public void Filling_the_disk_during_writes_stops_with_disk_full_and_keeps_what_was_flushed()
    {
        foreach (var ext in Extensions)
        {
            using var fs = SmallFileSystem.TryMount(12)!;
            var path = fs.File("disk" + ext);
            var first = RandomData.Bytes(2 << 20, 3);
            using (var layer = DiskImage.Create(path, new ImageCreateOptions(256L << 20, ImageType.Dynamic, ext is ".img" or ".raw" ? null : 1 << 20)))
            using (var chain = new DiskChain(new[] { layer }))
            {
                chain.Write(0, first);
                chain.Flush();
            }
            var before = Sha(path, first.Length);

            var chunk = RandomData.Bytes(1 << 20, 4);
            var ex = Assert.Throws<DiskImageException>(() =>
            {
                using var chain = DiskImage.Open(path, OpenOptions.ReadWrite);
                for (long off = 8L << 20; off < chain.VirtualSize; off += chunk.Length)
                {
                    chain.Write(off, chunk);
                    chain.Flush();
                }
            });
            Assert.True(ex.Kind == ErrorKind.DiskFull, $"{ext}: {ex.Kind}: {ex.Message}");

            // Whatever was cut, the image opens and the data flushed before the disk filled reads back.
            Assert.Equal(before, Sha(path, first.Length));
            using var check = DiskImage.Open(path);
            Assert.False(check.Check().HasErrors, $"{ext}: {string.Join("; ", check.Check().Problems)}");
        }
    }

    private static string Sha(string path, int length)
    {
        using var chain = DiskImage.Open(path);
        var buffer = new byte[length];
        chain.Read(0, buffer);
        return ContentHash.Of(buffer);
    }
}
