using System.Buffers.Binary;
using System.Text;
using DiskSnapshotEngine.Tests.Infrastructure;
using static DiskSnapshotEngine.Tests.Cli.VerbScenarios;

namespace DiskSnapshotEngine.Tests.Formats.Qcow2;

/// <summary>
/// qcow2.txt "Header extensions": an extension this engine does not know is kept byte for byte by every verb that
/// writes the image, including those that rewrite it into a new file (compact, resize --shrink, reset).
/// </summary>
public class Qcow2UnknownExtensionTests
{
    private const uint ForeignType = 0x12345678;
    private static readonly byte[] s_payload = Encoding.ASCII.GetBytes("kept-by-every-writer");

    // Inserts the foreign extension first in the list that starts at header_length (offset 100), before the backing file name.
    private static void AddForeignExtension(string path)
    {
        using var f = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        var cluster = new byte[4096];
        f.ReadExactly(cluster);
        int start = (int)BinaryPrimitives.ReadUInt32BigEndian(cluster.AsSpan(100));
        int end = start;
        while (BinaryPrimitives.ReadUInt32BigEndian(cluster.AsSpan(end)) != 0)
            end += 8 + ((int)BinaryPrimitives.ReadUInt32BigEndian(cluster.AsSpan(end + 4)) + 7) / 8 * 8;
        var ours = new byte[8 + (s_payload.Length + 7) / 8 * 8];
        BinaryPrimitives.WriteUInt32BigEndian(ours, ForeignType);
        BinaryPrimitives.WriteUInt32BigEndian(ours.AsSpan(4), (uint)s_payload.Length);
        s_payload.CopyTo(ours, 8);
        var rest = cluster.AsSpan(start, end + 8 - start).ToArray();
        // The backing file name (after the end marker) moves along, and backing_file_offset with it.
        long nameAt = (long)BinaryPrimitives.ReadUInt64BigEndian(cluster.AsSpan(8));
        var name = nameAt == 0 ? [] : cluster.AsSpan((int)nameAt, (int)BinaryPrimitives.ReadUInt32BigEndian(cluster.AsSpan(16))).ToArray();
        cluster.AsSpan(start).Clear();
        ours.CopyTo(cluster, start);
        rest.CopyTo(cluster, start + ours.Length);
        if (nameAt != 0)
        {
            name.CopyTo(cluster, start + ours.Length + rest.Length);
            BinaryPrimitives.WriteUInt64BigEndian(cluster.AsSpan(8), (ulong)(start + ours.Length + rest.Length));
        }
        f.Position = 0;
        f.Write(cluster);
    }

    private static void AssertKept(string path, string after)
    {
        var head = new byte[65536];
        using (var f = File.OpenRead(path)) f.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
        var expected = new byte[8 + s_payload.Length];
        BinaryPrimitives.WriteUInt32BigEndian(expected, ForeignType);
        BinaryPrimitives.WriteUInt32BigEndian(expected.AsSpan(4), (uint)s_payload.Length);
        s_payload.CopyTo(expected, 8);
        Assert.True(head.AsSpan().IndexOf(expected) > 0, $"after {after}: the unknown header extension 0x{ForeignType:x8} is gone");
        Qcow2TestKit.AssertQemuCheckClean(path);
    }

    [RequiresToolFact("qemu-img")]
    public async Task Write_compact_a_rewriting_resize_and_reset_keep_an_unknown_header_extension()
    {
        using var dir = new TempDirectory("q2ext");
        string image = dir.File("disk.qcow2"), raw = dir.File("disk.raw");
        Qcow2TestKit.QemuImg("create", "-f", "qcow2", image, "16M");
        AddForeignExtension(image);
        AssertKept(image, "the set-up");
        File.WriteAllBytes(dir.File("data.bin"), RandomData.Bytes(3 << 20, 11));
        await Ok("write", image, "--offset", "1M", "--input", dir.File("data.bin"));
        AssertKept(image, "write");
        await Ok("export", image, raw);

        await Ok("compact", image);
        AssertKept(image, "compact");
        await Ok("resize", image, "--size", "8M", "--shrink");
        AssertKept(image, "resize --shrink");
        // The content is the same (the first 8 MiB of it).
        using (var f = new FileStream(raw, FileMode.Open)) f.SetLength(8 << 20);
        Qcow2TestKit.QemuImg("compare", "-f", "qcow2", "-F", "raw", image, raw);

        // reset rewrites a child into a new, empty file over the same parent: the child's own extension goes with it.
        string child = dir.File("child.qcow2");
        Qcow2TestKit.QemuImg("create", "-f", "qcow2", child, "8M");
        AddForeignExtension(child); // before the backing file name is there (the helper does not move it)
        Qcow2TestKit.QemuImg("rebase", "-u", "-b", image, "-F", "qcow2", child);
        AssertKept(child, "qemu-img rebase -u");
        await Ok("write", child, "--offset", "0", "--input", dir.File("data.bin"));
        await Ok("reset", child);
        AssertKept(child, "reset");
        Qcow2TestKit.QemuImg("compare", image, child);
    }

    /// <summary>The verbs that rewrite only the header cluster: the seal a linked clone records, rebase and pull (a new backing name).</summary>
    [RequiresToolFact("qemu-img")]
    public async Task Sealing_rebase_and_pull_keep_an_unknown_header_extension()
    {
        using var dir = new TempDirectory("q2ext");
        string golden = dir.File("golden.qcow2"), mid = dir.File("mid.qcow2"), top = dir.File("top.qcow2"), other = dir.File("other.qcow2");
        Qcow2TestKit.QemuImg("create", "-f", "qcow2", golden, "16M");
        Qcow2TestKit.QemuIo(golden, "write -P 0x21 0 3M");
        AddForeignExtension(golden);
        await Ok("clone", "--linked", golden, mid);
        AssertKept(golden, "the seal of clone --linked");
        Qcow2TestKit.QemuIo(mid, "write -P 0x22 1M 1M");
        Qcow2TestKit.QemuImg("create", "-f", "qcow2", "-b", "mid.qcow2", "-F", "qcow2", top);
        Qcow2TestKit.QemuIo(top, "write -P 0x23 2M 64k");
        AddForeignExtension(top);
        string expected = dir.File("expected.raw");
        Qcow2TestKit.QemuImg("convert", "-O", "raw", top, expected);

        await Ok("merge", "--pull", top);
        AssertKept(top, "merge --pull");
        Qcow2TestKit.QemuImg("create", "-f", "qcow2", other, "16M");
        await Ok("rebase", top, "--parent", other);
        AssertKept(top, "rebase");
        Qcow2TestKit.QemuImg("compare", "-F", "raw", top, expected);
    }
}
