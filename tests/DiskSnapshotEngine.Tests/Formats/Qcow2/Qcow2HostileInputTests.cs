using System.Buffers.Binary;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.Tests.Infrastructure;
using static DiskSnapshotEngine.Tests.Formats.Qcow2.Qcow2TestKit;

namespace DiskSnapshotEngine.Tests.Formats.Qcow2;

/// <summary>
/// Hostile qcow2 headers and tables: each gives one typed error naming the file, the structure and the offset, in one
/// line, for read-only and writable opens alike, with bounded memory, and leaves the file unchanged.
/// </summary>
public sealed class Qcow2HostileInputTests : IDisposable
{
    private const long Size = 4L * MiB;
    private readonly TempDirectory _dir = new("qcow2-hostile");
    private readonly string _path;
    private readonly long _l1, _refcountTable, _l2;

    public Qcow2HostileInputTests()
    {
        _path = _dir.File("h.qcow2");
        using (var l = DiskImage.Create(_path, new ImageCreateOptions(Size)))
        using (var c = new DiskSnapshotEngine.Block.DiskChain(new[] { l }))
            c.Write(100_000, RandomData.Bytes(300_000, 1));
        _l1 = (long)U64(40);
        _refcountTable = (long)U64(48);
        _l2 = (long)(U64(_l1) & 0x00FFFFFFFFFFFE00UL);
    }

    public void Dispose() => _dir.Dispose();

    private ulong U64(long at) => ReadU64(_path, at);

    private void Patch(long at, ulong value, int width = 8) => PatchBigEndian(_path, at, value, width);

    private DiskImageException Expect(ErrorKind kind, string structure, string? messagePart = null) =>
        HostileInput.Expect(_path, kind, structure, messagePart, allocationLimit: 64L << 20);

    [Fact]
    public void A_backing_file_offset_whose_sum_with_the_size_wraps_is_corrupt()
    {
        Patch(16, 10, 4);
        Patch(8, ulong.MaxValue);
        Expect(ErrorKind.CorruptImage, "header", "backing file name");
    }

    [Fact]
    public void Unknown_version_is_unsupported() { Patch(4, 4, 4); Expect(ErrorKind.Unsupported, "header", "version 4"); }

    [Fact]
    public void Cluster_bits_below_9_are_corrupt() { Patch(20, 8, 4); Expect(ErrorKind.CorruptImage, "header", "cluster_bits 8"); }

    [Fact]
    public void Huge_cluster_bits_are_unsupported() { Patch(20, 63, 4); Expect(ErrorKind.Unsupported, "header", "cluster_bits 63"); }

    [Fact]
    public void A_huge_virtual_size_is_refused_before_anything_is_allocated()
    {
        Patch(24, ulong.MaxValue);
        Expect(ErrorKind.Unsupported, "header", "virtual size");
    }

    [Fact]
    public void A_small_l1_for_the_size_is_corrupt() { Patch(24, 1UL << 40); Expect(ErrorKind.CorruptImage, "header", "l1_size"); }

    [Fact]
    public void A_huge_l1_is_unsupported() { Patch(36, 0x7FFFFFFF, 4); Expect(ErrorKind.Unsupported, "header", "l1_size"); }

    [Fact]
    public void An_l1_table_past_the_end_of_the_file_is_corrupt() { Patch(40, 1UL << 40); Expect(ErrorKind.CorruptImage, "header", "past the end"); }

    [Fact]
    public void An_l1_table_over_the_header_is_corrupt() { Patch(40, 0); Expect(ErrorKind.CorruptImage, "header", "L1 table"); }

    [Fact]
    public void A_refcount_table_over_the_l1_is_corrupt() { Patch(48, (ulong)_l1); Expect(ErrorKind.CorruptImage, "header", "overlaps the L1 table"); }

    [Fact]
    public void A_huge_refcount_table_is_unsupported() { Patch(56, 0xFFFFFFFF, 4); Expect(ErrorKind.Unsupported, "header", "refcount table"); }

    [Fact]
    public void An_l2_table_past_the_end_is_corrupt() { Patch(_l1, (1UL << 50) | (1UL << 63)); Expect(ErrorKind.CorruptImage, "L1 table", "past the end"); }

    [Fact]
    public void An_l2_table_pointing_at_the_l1_is_corrupt() { Patch(_l1, (ulong)_l1 | (1UL << 63)); Expect(ErrorKind.CorruptImage, "L1 table", "overlaps the L1 table"); }

    [Fact]
    public void A_data_cluster_over_the_refcount_table_is_corrupt()
    {
        Patch(_l2 + 8, (ulong)_refcountTable | (1UL << 63));
        Expect(ErrorKind.CorruptImage, "L2 table", "refcount table");
    }

    [Fact]
    public void An_unaligned_data_cluster_is_corrupt() { Patch(_l2 + 8, ((ulong)_l2 + 512) | (1UL << 63)); Expect(ErrorKind.CorruptImage, "L2 table", "not aligned"); }

    [Fact]
    public void Compressed_garbage_is_corrupt()
    {
        // A compressed descriptor pointing at the L1 table's bytes: they do not inflate to a cluster.
        Patch(_l2 + 8, (1UL << 62) | (ulong)_l1);
        Expect(ErrorKind.CorruptImage, "compressed cluster");
    }

    [Fact]
    public void Unknown_incompatible_features_are_unsupported() { Patch(72, 1UL << 40); Expect(ErrorKind.Unsupported, "header", "bit 40"); }

    [Fact]
    public void Encryption_and_external_data_files_are_unsupported()
    {
        Patch(32, 2, 4);
        Expect(ErrorKind.Unsupported, "header", "encrypted");
        Patch(32, 0, 4);
        Patch(72, 1UL << 2);
        Expect(ErrorKind.Unsupported, "header", "external data file");
    }

    [Fact]
    public void Huge_snapshot_counts_are_corrupt() { Patch(60, 0xFFFFFFFF, 4); Expect(ErrorKind.CorruptImage, "header", "nb_snapshots"); }

    [Fact]
    public void A_snapshot_table_outside_the_file_is_corrupt()
    {
        Patch(60, 3, 4);
        Patch(64, 1UL << 45);
        Expect(ErrorKind.CorruptImage, "header", "snapshots_offset");
    }

    [Fact]
    public void The_dirty_bit_opens_read_only_only_and_the_corrupt_bit_too()
    {
        Patch(72, 1);
        using (var chain = DiskImage.Open(_path)) Assert.Equal(Size, chain.VirtualSize);
        var dirty = Assert.Throws<DiskImageException>(() => DiskImage.Open(_path, OpenOptions.ReadWrite));
        Assert.Equal(ErrorKind.Unsupported, dirty.Kind);
        Assert.Contains("dirty bit", dirty.Message);
        Patch(72, 2);
        using (var chain = DiskImage.Open(_path)) Assert.Equal(Size, chain.VirtualSize);
        var corrupt = Assert.Throws<DiskImageException>(() => DiskImage.Open(_path, OpenOptions.ReadWrite));
        Assert.Equal(ErrorKind.CorruptImage, corrupt.Kind);
    }

    [Fact]
    public void A_header_extension_running_past_the_cluster_is_corrupt()
    {
        int at = (int)(U64(100) >> 32);
        Patch(at, 0x12345678_00100000UL);
        Expect(ErrorKind.CorruptImage, "header extension", "runs past");
    }

    /// <summary>A write that would land on metadata is refused with a typed error and changes nothing (qemu's overlap check).</summary>
    private void ExpectWriteRefused(string path, long at, string structure, string messagePart)
    {
        string before = ContentHash.OfFile(path);
        var e = Assert.Throws<DiskImageException>(() =>
        {
            using var chain = DiskImage.Open(path, OpenOptions.ReadWrite);
            chain.Write(at, RandomData.Bytes(4096, 9));
            chain.Flush();
        });
        Assert.Equal(ErrorKind.CorruptImage, e.Kind);
        Assert.Equal(structure, e.Structure);
        Assert.Contains(messagePart, e.Message);
        Assert.DoesNotContain('\n', e.Message);
        Assert.Equal(before, ContentHash.OfFile(path));
        using var reader = DiskImage.Open(path); // still readable, as qemu reads it
        reader.Read(at, new byte[4096]);
    }

    private ulong RefcountBlock0 => U64(_refcountTable) & 0x00FFFFFFFFFFFE00UL;

    [Fact]
    public void A_data_cluster_over_an_l2_table_is_not_written_over()
    {
        Patch(_l2 + 8 * 2, (ulong)_l2 | (1UL << 63)); // guest cluster 2 maps its own L2 table
        ExpectWriteRefused(_path, 2L * 65536, "L2 table", "holds an L2 table");
    }

    [Fact]
    public void A_data_cluster_over_a_refcount_block_is_not_written_over()
    {
        Patch(_l2 + 8 * 2, RefcountBlock0);
        ExpectWriteRefused(_path, 2L * 65536, "L2 table", "holds a refcount block");
    }

    [Fact]
    public void A_refcount_block_that_is_an_l2_table_refuses_writes()
    {
        Patch(_refcountTable, (ulong)_l2);
        ExpectWriteRefused(_path, 3L * MiB, "refcount table", "also an L2 table");
    }

    [Fact]
    public void Two_refcount_table_entries_naming_one_block_refuse_writes()
    {
        Patch(_refcountTable + 8, RefcountBlock0);
        ExpectWriteRefused(_path, 3L * MiB, "refcount table", "named by an earlier entry");
    }

    [Fact]
    public void A_refcount_block_past_the_end_or_over_the_l1_refuses_writes()
    {
        Patch(_refcountTable, 1UL << 50);
        ExpectWriteRefused(_path, 3L * MiB, "refcount table", "past the end of the file");
        Patch(_refcountTable, (ulong)_l1);
        ExpectWriteRefused(_path, 3L * MiB, "refcount table", "overlaps the L1 table");
    }

    [Fact]
    public void Two_l1_entries_naming_one_l2_table_refuse_writes()
    {
        // 1 GiB of 64 KiB clusters: two L1 entries; the second is made to name the first one's L2 table.
        string path = _dir.File("shared-l2.qcow2");
        using (var l = DiskImage.Create(path, new ImageCreateOptions(1L << 30)))
        using (var c = new DiskSnapshotEngine.Block.DiskChain(new[] { l }))
            c.Write(0, RandomData.Bytes(4096, 2));
        var bytes = File.ReadAllBytes(path);
        long l1 = (long)BinaryPrimitives.ReadUInt64BigEndian(bytes.AsSpan(40));
        bytes.AsSpan((int)l1, 8).CopyTo(bytes.AsSpan((int)l1 + 8));
        File.WriteAllBytes(path, bytes);
        ExpectWriteRefused(path, 600L * MiB, "L1 table", "which an earlier entry names too");
    }
}
