using DiskSnapshotEngine.Cli;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;
using DiskSnapshotEngine.Operations;
using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Operations;

/// <summary>
/// VMs side by side in one folder: while QEMU runs one of them, dse still writes, serves and snapshots another, since
/// the running image's parent link is read without a lock (as qemu-img -U reads) and names another image. A locked
/// image that does read through the target still stops the verb.
/// </summary>
public class DependentsLockTests
{
    [RequiresToolFact("qemu-io")]
    public async Task A_sibling_vm_qemu_writes_does_not_stop_a_write_to_an_unrelated_image_beside_it()
    {
        using var dir = new TempDirectory("dependents-lock");
        string golden = dir.File("golden.vhdx"), vm1 = dir.File("vm1.vhdx"), vm2 = dir.File("vm2.qcow2"), input = dir.File("in.bin");
        await CliRunner.OkAsync("create", golden, "--size", "16M");
        await CliRunner.OkAsync("create", vm1, "--parent", golden);
        await CliRunner.OkAsync("create", vm2, "--parent", golden);
        File.WriteAllBytes(input, RandomData.Bytes(70_000, 5));

        using (QemuHolder.Start(vm2, "qcow2", backing: golden))
        {
            var write = await CliRunner.RunAsync("write", vm1, "--offset", "4096", "--input", input);
            Assert.True(write.ExitCode == 0, write.ToString());
            var snapshot = await CliRunner.RunAsync("snapshot", "create", vm1, "--name", "s1");
            Assert.True(snapshot.ExitCode == 0, snapshot.ToString());
        }
        using var chain = DiskImage.Open(vm1);
        var got = new byte[70_000];
        chain.Read(4096, got);
        Assert.True(got.AsSpan().SequenceEqual(File.ReadAllBytes(input)));
    }

    [RequiresToolFact("qemu-io")]
    public async Task A_child_qemu_writes_still_stops_a_write_to_its_parent()
    {
        using var dir = new TempDirectory("dependents-lock");
        string parent = dir.File("p.vhdx"), child = dir.File("c.vhdx"), input = dir.File("in.bin");
        await CliRunner.OkAsync("create", parent, "--size", "16M");
        await CliRunner.OkAsync("create", child, "--parent", parent);
        await CliRunner.OkAsync("unseal", parent);
        File.WriteAllBytes(input, RandomData.Bytes(4096, 6));
        string hash = ContentHash.OfFile(parent);
        // dse holds the child for writing (as dse serve does) without the chain: only the child's lock is taken.
        using (DiskImage.OpenLayer(child, writable: true))
        {
            var write = await CliRunner.RunProcessAsync(null, "write", parent, "--offset", "0", "--input", input);
            Assert.True(write.ExitCode == ExitCodes.ForKind(ErrorKind.Locked), write.ToString());
            Assert.Contains($"{parent}: {child} reads through it and is in use", write.StdErr);
        }
        Assert.Equal(hash, ContentHash.OfFile(parent));
    }

    [Fact]
    public async Task A_locked_sibling_whose_header_reads_differently_the_second_time_is_not_taken_for_a_stranger()
    {
        using var dir = new TempDirectory("dependents-peek");
        string parent = dir.File("p.vhdx"), child = dir.File("c.qcow2"), stranger = dir.File("other/s.qcow2");
        Directory.CreateDirectory(dir.File("other"));
        await CliRunner.OkAsync("create", parent, "--size", "16M");
        await CliRunner.OkAsync("create", child, "--parent", parent);
        await CliRunner.OkAsync("create", stranger, "--size", "16M");
        // The child is being written by another process (its lock is refused), and the first unlocked read of its header
        // lands mid-rewrite: it reads as an image with no parent (the stranger's header); the second read is the real one.
        int opens = 0;
        Func<string, bool, IImageFile> opener = (path, writable) => path != child ? ImageFile.Open(path, writable)
            : ++opens switch
            {
                1 => throw new DiskImageException(ErrorKind.Locked, "the file is locked by a VM", path),
                2 => ImageFile.Open(stranger, FileLockMode.ForceShare),
                _ => ImageFile.Open(path, FileLockMode.ForceShare),
            };
        using var layer = DiskImage.OpenLayer(parent, writable: false);

        var e = Assert.Throws<DiskImageException>(() =>
            Dependents.ChildrenOf(layer, [dir.Path], OpenOptions.ReadOnly with { FileOpener = opener }));
        Assert.Equal(ErrorKind.Locked, e.Kind);
        Assert.Contains($"cannot tell whether {child} depends on {parent}", e.Detail);
        Assert.Equal(3, opens); // the caller's opener served both unlocked reads
    }

    [Fact]
    public async Task A_locked_vhdx_sibling_that_links_elsewhere_is_read_once()
    {
        using var dir = new TempDirectory("dependents-peek-vhdx");
        string parent = dir.File("p.vhdx"), sibling = dir.File("s.vhdx");
        await CliRunner.OkAsync("create", parent, "--size", "16M");
        await CliRunner.OkAsync("create", sibling, "--size", "16M");
        // Its headers carry checksums: a torn read fails them, so one unlocked read is an answer.
        int opens = 0;
        Func<string, bool, IImageFile> opener = (path, writable) => path != sibling ? ImageFile.Open(path, writable)
            : ++opens switch
            {
                1 => throw new DiskImageException(ErrorKind.Locked, "the file is locked by a VM", path),
                2 => ImageFile.Open(path, FileLockMode.ForceShare),
                _ => throw new DiskImageException(ErrorKind.Io, "read a second time", path),
            };
        using var layer = DiskImage.OpenLayer(parent, writable: false);

        Assert.Empty(Dependents.ChildrenOf(layer, [dir.Path], OpenOptions.ReadOnly with { FileOpener = opener }));
        Assert.Equal(2, opens);
    }

    [Fact]
    public async Task A_locked_qcow2_sibling_is_read_again_for_its_header_only()
    {
        using var dir = new TempDirectory("dependents-peek-qcow2");
        string parent = dir.File("p.vhdx"), other = dir.File("o.vhdx"), sibling = dir.File("s.qcow2"), head = dir.File("head/s.qcow2");
        Directory.CreateDirectory(dir.File("head"));
        await CliRunner.OkAsync("create", parent, "--size", "16M");
        await CliRunner.OkAsync("create", other, "--size", "16M");
        await CliRunner.OkAsync("create", sibling, "--parent", other);
        // The second read is served by a copy of the sibling's first cluster only: the header bytes are the same, but
        // a layer could not be opened from it (its tables lie past that end).
        using (var source = File.OpenRead(sibling))
        using (var copy = File.Create(head))
        {
            var first = new byte[64 << 10];
            source.ReadExactly(first);
            copy.Write(first);
        }
        int opens = 0;
        Func<string, bool, IImageFile> opener = (path, writable) => path != sibling ? ImageFile.Open(path, writable)
            : ++opens switch
            {
                1 => throw new DiskImageException(ErrorKind.Locked, "the file is locked by a VM", path),
                2 => ImageFile.Open(path, FileLockMode.ForceShare),
                _ => ImageFile.Open(head, FileLockMode.ForceShare),
            };
        using var layer = DiskImage.OpenLayer(parent, writable: false);

        Assert.Empty(Dependents.ChildrenOf(layer, [dir.Path], OpenOptions.ReadOnly with { FileOpener = opener }));
        Assert.Equal(3, opens);
    }
}
