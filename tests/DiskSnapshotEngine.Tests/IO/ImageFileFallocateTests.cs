using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.IO;

/// <summary>
/// The one fallocate policy of <see cref="ImageFile"/>: a reserve (fixed images) and an allocate-before-write
/// (--no-sync outputs) that the disk cannot hold are DiskFull naming the range, on a real full tmpfs, and leave the
/// file's size as it was; what fits is allocated (the size grows for a reserve only).
/// </summary>
public class ImageFileFallocateTests
{
    private const long TooMuch = 64L << 20;

    [RequiresMountFact]
    public void Reserve_and_allocate_past_the_free_space_are_disk_full_and_change_no_size()
    {
        using var fs = SmallFileSystem.TryMount(8)!;
        using (var reserved = ImageFile.Create(fs.File("reserve.img")))
        {
            var e = Assert.Throws<DiskImageException>(() => reserved.Reserve(TooMuch));
            Assert.Equal((ErrorKind.DiskFull, 0L), (e.Kind, e.FileOffset));
            Assert.Contains($"cannot allocate {TooMuch} bytes at 0: no space left", e.Message); // Allocate's words (it said "cannot reserve")
            Assert.Equal(0, reserved.Length);
            reserved.Reserve(1 << 20);
            Assert.Equal((1L << 20, 1L << 20), (reserved.Length, ImageFile.AllocatedBytes(reserved.Path)));
        }

        using var allocated = ImageFile.Create(fs.File("allocate.img"));
        allocated.UseAllocatedWrites();
        var full = Assert.Throws<DiskImageException>(() => allocated.Allocate(4096, TooMuch));
        Assert.Equal((ErrorKind.DiskFull, 4096L), (full.Kind, full.FileOffset));
        Assert.Contains("no space left", full.Message);
        allocated.Allocate(4096, 1 << 20);
        Assert.Equal((0L, 1L << 20), (allocated.Length, ImageFile.AllocatedBytes(allocated.Path)));
    }
}
