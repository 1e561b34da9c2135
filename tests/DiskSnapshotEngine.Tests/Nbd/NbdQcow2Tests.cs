using DiskSnapshotEngine.Tests.Infrastructure;
using static DiskSnapshotEngine.Tests.Formats.Qcow2.Qcow2TestKit;

namespace DiskSnapshotEngine.Tests.Nbd;

/// <summary>
/// Issue 12 "serve works on qcow2 layers and mixed chains": QEMU's NBD client reads a served qcow2 chain (compressed
/// zlib and zstd clusters, extended L2 entries, a VHDX golden below a qcow2 overlay) exactly as qemu-img reads the
/// files, and its writes land copy-on-write in the top qcow2, which qemu-img check then passes.
/// </summary>
public sealed class NbdQcow2Tests
{
    private const long Size = 24L * MiB;

    public static TheoryData<string> Chains => new() { "zlib", "zstd", "extended-over-vhdx" };

    [RequiresToolTheory("qemu-img", "qemu-io")]
    [MemberData(nameof(Chains))]
    public void Qemu_reads_a_served_qcow2_chain_like_the_files_and_its_writes_land_in_the_top_qcow2(string kind)
    {
        using var dir = new TempDirectory("nbd-qcow2");
        string raw = MakeRaw(dir.File("src.raw"), Size, 21);
        string b = dir.File(kind == "extended-over-vhdx" ? "base.vhdx" : "base.qcow2");
        string top = dir.File("top.qcow2");
        if (kind == "extended-over-vhdx")
        {
            QemuImg("convert", "-O", "vhdx", raw, b);
            QemuImg("create", "-f", "qcow2", "-o", "extended_l2=on", "-b", "base.vhdx", "-F", "vhdx", top);
        }
        else
        {
            QemuImg("convert", "-c", "-O", "qcow2", "-o", "compression_type=" + kind, raw, b);
            DiskImage.CreateDifferencing(top, b).Dispose();
        }
        QemuIo(top, "write -P 0x31 1M 70k", "write -z 5M 64k");
        string expected = dir.File("expected.raw");
        QemuImg("convert", "-O", "raw", top, expected);

        using (var served = new ServedImage(top, dir.File("s.sock"), writable: true))
        {
            string uri = served.Server.Uri;
            // Every byte, through QEMU's NBD client (block status and reads), equals qemu's read of the files.
            QemuImg("compare", "-f", "raw", "-F", "raw", uri, expected);
            // Writes over the parent's (compressed) clusters: partial ones copy the rest of the cluster from below.
            string[] writes = { "write -P 0x41 3000 5000", "write -P 0x42 8M 200k", "write -z 12M 128k", "write -P 0x43 20M 1" };
            ExternalTool.RunChecked("qemu-io", new[] { "-f", "raw" }.Concat(writes.SelectMany(w => new[] { "-c", w })).Append(uri).ToArray());
            ExternalTool.RunChecked("qemu-io", new[] { "-f", "raw" }.Concat(writes.SelectMany(w => new[] { "-c", w })).Append(expected).ToArray());
            QemuImg("compare", "-f", "raw", "-F", "raw", uri, expected);
        }
        AssertQemuCheckClean(top);
        QemuImg("compare", "-F", "raw", top, expected);
    }
}
