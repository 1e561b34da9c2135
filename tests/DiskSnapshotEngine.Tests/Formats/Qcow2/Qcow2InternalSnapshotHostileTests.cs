using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Tests.Infrastructure;
using static DiskSnapshotEngine.Tests.Formats.Qcow2.Qcow2TestKit;

namespace DiskSnapshotEngine.Tests.Formats.Qcow2;

/// <summary>
/// A hostile snapshot table entry (qcow2.txt "Snapshots") read through --internal-snapshot: its L1 table past the
/// file, over the header or the active tables, too large, or a disk_size beyond reach gives one typed error naming the
/// snapshot, with bounded memory, and leaves the file unchanged (after <see cref="HostileInput.Expect"/>). A disk_size
/// beyond what dse addresses is legal in qcow2.txt (a 64-bit field) and is Unsupported, as the same header size is.
/// </summary>
public sealed class Qcow2InternalSnapshotHostileTests : IDisposable
{
    private readonly TempDirectory _dir = new("qcow2-isnap-hostile");
    private readonly string _path;
    private readonly long _entry;

    public Qcow2InternalSnapshotHostileTests()
    {
        _path = _dir.File("h.qcow2");
        if (ExternalTool.Has("qemu-img") && ExternalTool.Has("qemu-io"))
        {
            QemuImg("create", "-f", "qcow2", _path, "4M");
            QemuIo(_path, "write -P 0x5a 0 1M");
            QemuImg("snapshot", "-c", "s1", _path);
            _entry = (long)U64(64);
        }
    }

    public void Dispose() => _dir.Dispose();

    private ulong U64(long at) => ReadU64(_path, at);

    private void Patch(long at, ulong value, int width = 8) => PatchBigEndian(_path, at, value, width);

    private void Expect(string structure, string messagePart) => Expect(ErrorKind.CorruptImage, structure, messagePart);

    private DiskImageException Expect(ErrorKind kind, string structure, string messagePart)
    {
        string before = ContentHash.OfFile(_path);
        long allocated = GC.GetAllocatedBytesForCurrentThread();
        var e = Assert.Throws<DiskImageException>(() =>
        {
            using var chain = DiskImage.Open(_path, OpenOptions.ReadOnly with { InternalSnapshot = "s1" });
            var buffer = new byte[1 << 20];
            for (long at = 0; at < chain.VirtualSize; at += buffer.Length)
                chain.Read(at, buffer.AsSpan(0, (int)Math.Min(buffer.Length, chain.VirtualSize - at)));
        });
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - allocated < 64L << 20, "more than 64 MiB allocated");
        Assert.Equal(kind, e.Kind);
        Assert.Equal(structure, e.Structure);
        Assert.Equal(Path.GetFullPath(_path), e.Path);
        Assert.Contains("snapshot 1 's1'", e.Message);
        Assert.Contains(messagePart, e.Message);
        Assert.DoesNotContain('\n', e.Message);
        Assert.Equal(before, ContentHash.OfFile(_path));
        // The current state does not read the snapshot's table: it still opens.
        using var current = DiskImage.Open(_path);
        return e;
    }

    [RequiresToolFact("qemu-img", "qemu-io")]
    public void A_snapshot_l1_table_past_the_end_of_the_file_is_corrupt() { Patch(_entry, 1UL << 40); Expect("snapshot table", "past the end"); }

    [RequiresToolFact("qemu-img", "qemu-io")]
    public void A_snapshot_l1_table_over_the_header_is_corrupt() { Patch(_entry, 0); Expect("snapshot table", "offset 0 is not"); }

    [RequiresToolFact("qemu-img", "qemu-io")]
    public void A_snapshot_l1_table_over_the_refcount_table_is_corrupt() { Patch(_entry, U64(48)); Expect("snapshot table", "overlaps the refcount table"); }

    [RequiresToolFact("qemu-img", "qemu-io")]
    public void A_huge_snapshot_l1_size_is_corrupt_before_anything_is_allocated() { Patch(_entry + 8, 0x7FFFFFFF, 4); Expect("snapshot table", "l1_size"); }

    [RequiresToolFact("qemu-img", "qemu-io")]
    public void A_huge_snapshot_disk_size_is_unsupported()
    {
        Patch(_entry + 48, ulong.MaxValue);
        var e = Expect(ErrorKind.Unsupported, "snapshot table", $"disk_size {ulong.MaxValue} is above");
        Assert.Equal(_entry + 48, e.FileOffset);
    }

    // One size just beyond what dse addresses, in the snapshot's disk_size and then in the header: the same refusal.
    [RequiresToolFact("qemu-img", "qemu-io")]
    public void A_disk_size_beyond_reach_is_refused_as_the_same_header_size_is()
    {
        const ulong beyond = (1UL << 60) + 512;
        string pristine = ContentHash.OfFile(_path);
        var original = File.ReadAllBytes(_path);
        Patch(_entry + 48, beyond);
        var snapshot = Expect(ErrorKind.Unsupported, "snapshot table", $"snapshot 1 's1': disk_size {beyond} is above the {1L << 60} bytes");

        File.WriteAllBytes(_path, original);
        Assert.Equal(pristine, ContentHash.OfFile(_path));
        Patch(24, beyond);
        var header = HostileInput.Expect(_path, ErrorKind.Unsupported, "header", $"virtual size {beyond} is above the {1L << 60} bytes");
        Assert.Equal(snapshot.Kind, header.Kind);
        Assert.Equal(snapshot.Message[snapshot.Message.IndexOf(" is above", StringComparison.Ordinal)..],
            header.Message[header.Message.IndexOf(" is above", StringComparison.Ordinal)..]);
    }

    [RequiresToolFact("qemu-img", "qemu-io")]
    public void A_snapshot_l2_table_past_the_end_is_corrupt_and_named_after_the_snapshot()
    {
        Patch((long)U64(_entry), 1UL << 50);
        Expect("L1 table of snapshot 1 's1'", "past the end");
    }
}
