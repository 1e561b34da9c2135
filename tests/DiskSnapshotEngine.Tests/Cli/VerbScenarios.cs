using System.Text.Json;
using DiskSnapshotEngine.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Cli;

/// <summary>
/// The verb scenarios, written once and run for every format.
/// Each keeps an in-memory model of the virtual disk and compares what dse exports, and what qemu-img converts, to it.
/// </summary>
internal static class VerbScenarios
{
    public static async Task<CliResult> Ok(params string[] args)
    {
        var r = await CliRunner.RunAsync(args);
        Assert.True(r.ExitCode == 0, $"dse {string.Join(' ', args)}: {r}");
        return r;
    }

    public static async Task Create_write_export_round_trip(string ext)
    {
        using var dir = new TempDirectory("cli");
        string image = dir.File("disk." + ext);
        const int size = 64 << 20;
        var model = new byte[size];
        await Ok("create", image, "--size", "64M");

        // A file input crossing several 1 MiB / block boundaries at an unaligned offset.
        var big = RandomData.Bytes(3_000_001, 1);
        File.WriteAllBytes(dir.File("big.bin"), big);
        long bigAt = (10 << 20) + 123;
        var w = await Ok("write", image, "--offset", bigAt.ToString(), "--input", dir.File("big.bin"));
        Assert.Contains("wrote 3000001 bytes", w.StdOut);
        big.CopyTo(model, bigAt);

        // stdin input, with a K suffix offset.
        var small = RandomData.Bytes(5000, 2);
        var s = await CliRunner.RunWithStdinAsync(small, "write", image, "--offset", "7K", "--input", "-");
        Assert.True(s.ExitCode == 0, s.ToString());
        small.CopyTo(model, 7 << 10);

        // Overwrite part of the first write: the later bytes win.
        var over = RandomData.Bytes(4096, 3);
        File.WriteAllBytes(dir.File("over.bin"), over);
        await Ok("write", image, "--offset", (bigAt + 1000).ToString(), "--input", dir.File("over.bin"));
        over.CopyTo(model, bigAt + 1000);

        // At the very end of the disk.
        var tail = RandomData.Bytes(512, 4);
        File.WriteAllBytes(dir.File("tail.bin"), tail);
        await Ok("write", image, "--offset", (size - 512).ToString(), "--input", dir.File("tail.bin"));
        tail.CopyTo(model, size - 512);

        string exported = dir.File("out.raw");
        await Ok("export", image, exported);
        Assert.Equal(ContentHash.Of(model), ContentHash.OfFile(exported));

        var toStdout = await Ok("export", image, "-");
        Assert.Equal(size, toStdout.StdOutBytes.Length);
        Assert.Equal(ContentHash.Of(model), ContentHash.Of(toStdout.StdOutBytes));

        // An independent reader of the same file must see the same disk.
        string viaQemu = dir.File("qemu.raw");
        ExternalTool.RunChecked("qemu-img", "convert", "-f", ext is "img" ? "raw" : ext, "-O", "raw", image, viaQemu);
        Assert.Equal(ContentHash.Of(model), ContentHash.OfFile(viaQemu));
    }

    public static async Task Write_past_the_end_is_refused_before_writing(string ext)
    {
        using var dir = new TempDirectory("cli");
        string image = dir.File("disk." + ext);
        await Ok("create", image, "--size", "1M");
        File.WriteAllBytes(dir.File("in.bin"), RandomData.Bytes(1000, 5));
        var r = await CliRunner.RunAsync("write", image, "--offset", ((1 << 20) - 999).ToString(), "--input", dir.File("in.bin"));
        Assert.Equal(ExitCodes.OutOfBounds, r.ExitCode);
        Assert.Contains("past the end", r.StdErr);
        var export = await Ok("export", image, "-");
        Assert.True(export.StdOutBytes.All(b => b == 0));

        var missing = await CliRunner.RunAsync("write", image, "--offset", "0", "--input", dir.File("nope.bin"));
        Assert.Equal(ExitCodes.FileNotFound, missing.ExitCode);
    }

    public static async Task Sparse_export_leaves_holes(string ext)
    {
        using var dir = new TempDirectory("cli");
        string image = dir.File("disk." + ext);
        await Ok("create", image, "--size", "512M");
        var data = RandomData.Bytes(1 << 20, 6);
        File.WriteAllBytes(dir.File("in.bin"), data);
        await Ok("write", image, "--offset", "300M", "--input", dir.File("in.bin"));
        string exported = dir.File("out.raw");
        await Ok("export", image, exported);

        Assert.Equal(512L << 20, new FileInfo(exported).Length);
        long allocated = AllocatedBytes(exported);
        // 1 MiB of data, plus at most a file-system block on each side; nothing like the 512 MiB a dense copy takes.
        Assert.InRange(allocated, 1 << 20, 2 << 20);
        using var f = File.OpenRead(exported);
        var back = new byte[data.Length];
        f.Position = 300L << 20;
        f.ReadExactly(back);
        Assert.Equal(data, back);
    }

    public static async Task Info_json_has_the_documented_fields(string ext, string expectedFormat)
    {
        using var dir = new TempDirectory("cli");
        string image = dir.File("disk." + ext);
        // Raw files do not record a sector size (they reopen as 512) and VDI addresses 512-byte sectors only; VHDX must keep 4096.
        int sector = expectedFormat == "vhdx" ? 4096 : 512;
        var created = await Ok("create", image, "--size", "16M", "--logical-sector-size", sector.ToString(), "--json");
        using (var c = JsonDocument.Parse(created.StdOut))
            Assert.Equal(16L << 20, c.RootElement.GetProperty("virtualSize").GetInt64());

        var r = await Ok("info", image, "--json");
        using var doc = JsonDocument.Parse(r.StdOut);
        var root = doc.RootElement;
        Assert.Equal(Path.GetFullPath(image), root.GetProperty("image").GetString());
        Assert.Equal(expectedFormat, root.GetProperty("format").GetString());
        Assert.Equal(16L << 20, root.GetProperty("virtualSize").GetInt64());
        Assert.Equal(sector, root.GetProperty("logicalSectorSize").GetInt32());
        Assert.True(root.GetProperty("physicalSectorSize").GetInt32() >= 512);
        Assert.True(root.GetProperty("blockSize").GetInt32() > 0);
        Assert.Equal(new FileInfo(image).Length, root.GetProperty("fileSize").GetInt64());
        Assert.Equal(JsonValueKind.Null, root.GetProperty("parent").ValueKind);
        Assert.Equal(JsonValueKind.Object, root.GetProperty("details").ValueKind);
        Assert.Contains(root.GetProperty("type").GetString(), new[] { "dynamic", "fixed" });
        if (expectedFormat != "raw")
        {
            var id = root.GetProperty("identity");
            Assert.NotEqual(Guid.Empty, id.GetProperty("id").GetGuid());
            Assert.NotEqual(Guid.Empty, id.GetProperty("version").GetGuid());
        }

        var chain = await Ok("info", image, "--chain", "--json");
        using var chainDoc = JsonDocument.Parse(chain.StdOut);
        Assert.Equal(1, chainDoc.RootElement.GetProperty("layers").GetArrayLength());
        Assert.Equal(16L << 20, chainDoc.RootElement.GetProperty("virtualSize").GetInt64());

        var text = await Ok("info", image);
        Assert.Contains("virtual size:", text.StdOut);
        Assert.Contains("16 MiB (16777216 bytes)", text.StdOut);
    }

    public static async Task Check_reports_a_clean_image(string ext)
    {
        using var dir = new TempDirectory("cli");
        string image = dir.File("disk." + ext);
        // 64 MiB: whole default blocks (a disk smaller than one VHDX block is a separate edge case of the driver's check).
        await Ok("create", image, "--size", "64M");
        File.WriteAllBytes(dir.File("in.bin"), RandomData.Bytes(70000, 7));
        await Ok("write", image, "--offset", "1M", "--input", dir.File("in.bin"));
        var r = await Ok("check", image);
        Assert.Contains("no problems found", r.StdOut);
        var j = await Ok("check", image, "--json");
        using var doc = JsonDocument.Parse(j.StdOut);
        Assert.True(doc.RootElement.GetProperty("clean").GetBoolean());
        Assert.False(doc.RootElement.GetProperty("hasErrors").GetBoolean());
        Assert.Equal(0, doc.RootElement.GetProperty("problems").GetArrayLength());
    }

    public static async Task Child_reads_through_parent_and_leaves_it_unchanged(string ext)
    {
        using var dir = new TempDirectory("cli");
        string parent = dir.File("base." + ext), child = dir.File("child." + ext);
        const int size = 32 << 20;
        var model = new byte[size];
        await Ok("create", parent, "--size", "32M");
        var pdata = RandomData.Bytes(2 << 20, 8);
        File.WriteAllBytes(dir.File("p.bin"), pdata);
        await Ok("write", parent, "--offset", "1M", "--input", dir.File("p.bin"));
        pdata.CopyTo(model, 1 << 20);
        var parentVersion = JsonDocument.Parse((await Ok("info", parent, "--json")).StdOut).RootElement.GetProperty("identity").GetProperty("version").GetString();

        // Creating the child seals the parent (a mark in its metadata, not its content); from then on the file never changes.
        await Ok("create", child, "--parent", parent);
        var parentHash = ContentHash.OfFile(parent);
        var sealedInfo = JsonDocument.Parse((await Ok("info", parent, "--json")).StdOut).RootElement;
        Assert.True(sealedInfo.GetProperty("sealed").GetBoolean());
        Assert.Equal(parentVersion, sealedInfo.GetProperty("identity").GetProperty("version").GetString());
        var cdata = RandomData.Bytes(10000, 9);
        File.WriteAllBytes(dir.File("c.bin"), cdata);
        await Ok("write", child, "--offset", "1500000", "--input", dir.File("c.bin"));
        cdata.CopyTo(model, 1500000);

        var exported = await Ok("export", child, "-");
        Assert.Equal(ContentHash.Of(model), ContentHash.Of(exported.StdOutBytes));
        Assert.Equal(parentHash, ContentHash.OfFile(parent));

        var info = await Ok("info", child, "--chain", "--json");
        using var doc = JsonDocument.Parse(info.StdOut);
        var layers = doc.RootElement.GetProperty("layers");
        Assert.Equal(2, layers.GetArrayLength());
        Assert.Equal(Path.GetFullPath(child), layers[0].GetProperty("image").GetString());
        Assert.Equal("differencing", layers[0].GetProperty("type").GetString());
        Assert.Equal(JsonValueKind.Object, layers[0].GetProperty("parent").ValueKind);
        Assert.Equal(Path.GetFullPath(parent), layers[1].GetProperty("image").GetString());
        Assert.Equal(layers[1].GetProperty("identity").GetProperty("version").GetGuid(),
            layers[0].GetProperty("parent").GetProperty("parentVersion").GetGuid());
    }

    public static async Task Demo_proves_every_claim(string format)
    {
        using var dir = new TempDirectory("cli");
        var r = await Ok("demo", "--dir", dir.File("demo"), "--format", format);
        Assert.Contains("every proof holds", r.StdOut);
        Assert.DoesNotContain("[FAIL]", r.StdOut);
        Assert.True(r.StdOut.Split("[PASS]").Length - 1 >= 8, r.StdOut);
        Assert.True(File.Exists(dir.File($"demo/golden.{format}")));
    }

    /// <summary>Bytes the file system really allocated (stat %b is in 512-byte units).</summary>
    public static long AllocatedBytes(string path) =>
        long.Parse(ExternalTool.RunChecked("stat", "-c", "%b", path).Trim()) * 512;
}
