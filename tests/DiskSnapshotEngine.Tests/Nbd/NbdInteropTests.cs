using System.Text.Json;
using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Nbd;

/// <summary>
/// The real NBD clients against our server: qemu-img, qemu-io (QEMU's NBD client) and nbdinfo, nbdcopy (libnbd).
/// Each result is compared with what <c>dse export</c> and <c>dse map</c> say about the same chain.
/// </summary>
public class NbdInteropTests
{
    private const long Size = 1L << 30;

    /// <summary>A 1 GiB chain holding 16 MiB of data spread over its layers (the top one overwriting parts of its parents).</summary>
    private static List<string> SparseChain(string dir, string extension, int layers)
    {
        var paths = new List<string>();
        for (int i = 0; i < layers; i++)
        {
            string path = Path.Combine(dir, $"disk{i}.{extension}");
            if (i == 0) DiskImage.Create(path, new DiskSnapshotEngine.Formats.ImageCreateOptions(Size)).Dispose();
            else DiskImage.CreateDifferencing(path, paths[^1]).Dispose();
            paths.Add(path);
            using var chain = DiskImage.Open(path, OpenOptions.ReadWrite);
            int pieces = 16 / layers + (i == layers - 1 ? 16 % layers : 0); // 16 MiB in all, none overlapping
            for (int p = 0; p < pieces; p++)
                chain.Write((p * 61L + i * 7) << 20, RandomData.Bytes(1 << 20, i * 100 + p));
        }
        return paths;
    }

    private static string UriOf(ServedImage s) => s.Server.Uri;

    private static long AllocatedBytes(string path) =>
        long.Parse(ExternalTool.RunChecked("stat", "--format=%b", path).Trim()) * 512;

    private static void AssertSameFile(string expected, string actual)
    {
        using var a = File.OpenRead(expected);
        using var b = File.OpenRead(actual);
        Assert.Equal(a.Length, b.Length);
        var ba = new byte[1 << 20];
        var bb = new byte[1 << 20];
        for (long at = 0; at < a.Length; at += ba.Length)
        {
            a.ReadExactly(ba);
            b.ReadExactly(bb);
            if (!ba.AsSpan().SequenceEqual(bb)) Assert.Fail($"{actual} differs from {expected} in the MiB at {at}");
        }
    }

    private static async Task<string> Export(string image, string output)
    {
        var r = await CliRunner.RunAsync("export", image, output);
        Assert.True(r.ExitCode == 0, r.ToString());
        return output;
    }

    [RequiresToolTheory("qemu-img")]
    [InlineData("vhdx", 2)]
    [InlineData("vhdx", 3)]
    [InlineData("vdi", 2)]
    public async Task Qemu_img_convert_of_the_export_equals_dse_export_and_stays_sparse(string extension, int layers)
    {
        using var dir = new TempDirectory("nbd-qemu");
        var paths = SparseChain(dir.Path, extension, layers);
        using var served = new ServedImage(paths[^1], dir.File("s.sock"), writable: false);
        string converted = dir.File("converted.raw");
        ExternalTool.RunChecked("qemu-img", "convert", "-f", "raw", "-O", "raw", UriOf(served), converted);

        AssertSameFile(await Export(paths[^1], dir.File("export.raw")), converted);
        // 16 MiB of data in a 1 GiB disk: block status let qemu-img skip everything else.
        long allocated = AllocatedBytes(converted);
        Assert.True(allocated <= 20L << 20, $"qemu-img wrote {allocated >> 20} MiB for 16 MiB of data");
        Assert.True(allocated >= 16L << 20, $"only {allocated} bytes allocated");
    }

    [RequiresToolFact("nbdinfo")]
    public async Task Nbdinfo_map_shows_the_data_and_holes_of_dse_map()
    {
        using var dir = new TempDirectory("nbd-map");
        var paths = SparseChain(dir.Path, "vhdx", 3);
        using var served = new ServedImage(paths[^1], dir.File("s.sock"), writable: false);
        var map = await CliRunner.RunAsync("map", paths[^1], "--json");
        Assert.Equal(0, map.ExitCode);
        var expected = Merge(JsonDocument.Parse(map.StdOut).RootElement.EnumerateArray()
            .Select(e => (e.GetProperty("offset").GetInt64(), e.GetProperty("length").GetInt64(), e.GetProperty("kind").GetString() == "data")));

        var nbd = JsonDocument.Parse(ExternalTool.RunChecked("nbdinfo", "--map", "--json", UriOf(served))).RootElement;
        var actual = Merge(nbd.EnumerateArray().Select(e =>
            (e.GetProperty("offset").GetInt64(), e.GetProperty("length").GetInt64(), (e.GetProperty("type").GetInt32() & 1) == 0)));
        Assert.Equal(expected, actual);
        Assert.True(expected.Count >= 5, "the chain should have several data and hole runs");
        // The holes are also zero (type 3 = hole,zero), never "hole, contents unknown".
        Assert.All(nbd.EnumerateArray(), e => Assert.Contains(e.GetProperty("type").GetInt32(), new[] { 0, 3 }));
    }

    private static List<(long, long, bool)> Merge(IEnumerable<(long Offset, long Length, bool Data)> runs)
    {
        var merged = new List<(long Offset, long Length, bool Data)>();
        foreach (var r in runs)
        {
            if (merged.Count > 0 && merged[^1].Data == r.Data) merged[^1] = merged[^1] with { Length = merged[^1].Length + r.Length };
            else merged.Add(r);
        }
        return merged.Select(m => (m.Offset, m.Length, m.Data)).ToList();
    }

    [RequiresToolTheory("nbdcopy")]
    [InlineData(1)]
    [InlineData(4)]
    public async Task Nbdcopy_copies_the_export_exactly_on_one_or_several_connections(int connections)
    {
        using var dir = new TempDirectory("nbd-copy");
        var paths = SparseChain(dir.Path, "vhdx", 2);
        using var served = new ServedImage(paths[^1], dir.File("s.sock"), writable: false);
        string copy = dir.File("copy.raw");
        ExternalTool.RunChecked("nbdcopy", $"--connections={connections}", UriOf(served), copy);
        AssertSameFile(await Export(paths[^1], dir.File("export.raw")), copy);
        Assert.True(AllocatedBytes(copy) <= 20L << 20, "nbdcopy should have skipped the holes");
    }

    [RequiresToolFact("qemu-io", "qemu-img")]
    public void Qemu_io_writes_through_nbd_land_in_the_top_layer_and_the_tcp_port_works_too()
    {
        using var dir = new TempDirectory("nbd-qemu-io");
        var paths = SparseChain(dir.Path, "vhdx", 2);
        var parentHash = ContentHash.OfFile(paths[0]);
        using (var served = new ServedImage(paths[^1], socketPath: null, writable: true, o => o with { Port = 0 }))
        {
            string uri = served.Server.Uri;
            Assert.StartsWith("nbd://127.0.0.1:", uri);
            ExternalTool.RunChecked("qemu-io", "-f", "raw", "-c", "write -P 0x5a 700M 1M", "-c", "write -z 61M 1M", "-c", "flush", uri);
            var read = ExternalTool.RunChecked("qemu-io", "-f", "raw", "-c", "read -P 0x5a 700M 1M", "-c", "read -P 0 61M 1M", uri);
            Assert.DoesNotContain("Pattern verification failed", read);
        }
        Assert.Equal(parentHash, ContentHash.OfFile(paths[0]));
        using var chain = DiskImage.Open(paths[^1]);
        var got = new byte[1 << 20];
        chain.Read(700L << 20, got);
        Assert.All(got, b => Assert.Equal(0x5a, b));
        Assert.Equal(0, chain.GetExtents(700L << 20, 1 << 20).Single().LayerIndex);
        chain.Read(61L << 20, got);
        Assert.All(got, b => Assert.Equal(0, b));
        Assert.False(chain.Check().HasErrors);
    }

    /// <summary>
    /// While dse serves an image read-write, QEMU's own open of the file is refused by the lock, and the NBD path works.
    /// (A format driver is used: qemu-img info of a raw file asks for no permission at all, so QEMU lets it through
    /// even beside a running VM.)
    /// </summary>
    [RequiresToolFact("qemu-img")]
    public void Qemu_img_info_of_the_served_file_is_refused_by_its_lock_while_the_nbd_path_works()
    {
        using var dir = new TempDirectory("nbd-lock");
        string image = dir.File("disk.qcow2");
        DiskImage.Create(image, new DiskSnapshotEngine.Formats.ImageCreateOptions(64 << 20)).Dispose();
        using var served = new ServedImage(image, dir.File("s.sock"), writable: true);
        var (code, _, stderr) = ExternalTool.Run("qemu-img", "info", "-f", "qcow2", image);
        Assert.NotEqual(0, code);
        Assert.Contains("lock", stderr);
        Assert.Contains("virtual size: 64 MiB", ExternalTool.RunChecked("qemu-img", "info", "-f", "raw", UriOf(served)));
    }
}
