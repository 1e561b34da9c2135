using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Operations;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Operations;

/// <summary>
/// What <see cref="LinkedClone.Create"/> says of its parent's seal, which the CLI's one-line note is made from: sealed,
/// no mark (VHD), or left as it was because the parent cannot be written, and why. Each outcome is checked against the
/// parent's file as it is afterwards.
/// </summary>
public class LinkedCloneParentSealTests
{
    private const long Size = 4L << 20;

    [Fact]
    public void A_writable_parent_is_sealed_and_a_vhd_parent_has_no_mark()
    {
        using var dir = new TempDirectory("clone-seal");
        string vdi = dir.File("g.vdi"), vhd = dir.File("g.vhd");
        OpsKit.CreateBase(vdi, Size);
        OpsKit.CreateBase(vhd, Size);

        var first = LinkedClone.Create(vdi, dir.File("a.vdi"));
        Assert.Equal(new ParentSeal(vdi, ImageFormat.Vdi, ParentSealOutcome.Sealed, null), first);
        Assert.Equal(SealReasons.Golden, SealOf(vdi));
        Assert.Equal(ParentSealOutcome.Sealed, LinkedClone.Create(vdi, dir.File("b.vdi")).Outcome);

        var none = LinkedClone.Create(vhd, dir.File("c.vhd"));
        Assert.Equal(new ParentSeal(vhd, ImageFormat.Vhd, ParentSealOutcome.NoMark, null), none);
    }

    [RequiresLoopMountFact]
    public void A_parent_on_a_read_only_mount_is_left_as_it_was_and_says_why()
    {
        using var fs = LoopFileSystem.Create(32, "mkfs.ext4", "-q", "-F");
        using var dir = new TempDirectory("clone-seal-ro");
        string plain = fs.File("plain.vdi"), sole = fs.File("sole.vdi"), golden = fs.File("golden.vdi");
        foreach (var path in new[] { plain, sole, golden }) OpsKit.CreateBase(path, Size);
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(sole, UnixFileMode.UserRead | UnixFileMode.UserWrite); // private: the clone is recorded
        LinkedClone.Create(sole, dir.File("first.vdi")); // records its first clone as the only one
        DiskImage.Seal(golden); // sealed by the user: no clone recorded
        fs.Remount("ro");
        const string why = "the file system is read-only";

        Assert.Equal(new ParentSeal(plain, ImageFormat.Vdi, ParentSealOutcome.LeftUnsealed, why), LinkedClone.Create(plain, dir.File("p.vdi")));
        Assert.Equal(SealReasons.None, SealOf(plain));
        Assert.Equal(new ParentSeal(sole, ImageFormat.Vdi, ParentSealOutcome.SoleChildStale, why), LinkedClone.Create(sole, dir.File("s.vdi")));
        Assert.Equal(ParentSealOutcome.Sealed, LinkedClone.Create(golden, dir.File("g.vdi")).Outcome);
    }

    private static SealReasons SealOf(string path)
    {
        using var layer = DiskImage.OpenLayer(path, writable: false);
        return Seals.Of(layer);
    }
}
