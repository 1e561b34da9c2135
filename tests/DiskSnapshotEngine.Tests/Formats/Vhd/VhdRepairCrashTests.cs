using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.Formats.Vhd;
using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Formats.Vhd;

/// <summary>
/// check --repair of a VHD whose end footer is cut (by a whole footer or part of one), or whose footer copy at offset 0
/// is damaged, cut in turn after every write: each file a crash leaves, with or without its unflushed writes, reopens
/// with the original content, and a rerun of the repair then leaves the same content and the footer (at the end, or
/// its copy at offset 0) in place.
/// </summary>
public sealed class VhdRepairCrashTests
{
    [Theory]
    [InlineData(512)]
    [InlineData(200)]
    public async Task A_repair_cut_at_every_write_keeps_the_content_and_a_rerun_finishes_it(int truncatedBy)
    {
        using var dir = new TempDirectory("vhd-repair-crash");
        var (image, original) = await WrittenImage(dir, 700000, seed: 12);
        using (var f = new FileStream(image, FileMode.Open)) f.SetLength(f.Length - truncatedBy);
        byte[] damaged = File.ReadAllBytes(image);
        Assert.Equal(original, Content(damaged));

        var (change, length) = RepairOnce(image, damaged);
        Assert.Equal($"hard disk footer at offset {length - 512} (the end of the file): written back from its copy at offset 0", change);

        CutAtEveryWrite(image, original, damaged, $"truncated by {truncatedBy}",
            repaired => VhdFooter.HasCookie(repaired.AsSpan(repaired.Length - 512)), "no footer at the end after the rerun");
    }

    [Fact]
    public async Task A_footer_copy_rewrite_cut_at_every_write_keeps_the_content_and_a_rerun_finishes_it()
    {
        using var dir = new TempDirectory("vhd-repair-crash");
        var (image, original) = await WrittenImage(dir, 300000, seed: 13);
        VhdTestKit.Patch(image, 0, new byte[300]); // the copy's first 300 bytes, cookie and checksum with them
        byte[] damaged = File.ReadAllBytes(image);
        Assert.Equal(original, Content(damaged));

        var (change, length) = RepairOnce(image, damaged);
        Assert.Equal(damaged.Length, length);
        Assert.Equal($"hard disk footer copy at offset 0: rewritten from the footer at offset {length - 512} (the end of the file)", change);

        CutAtEveryWrite(image, original, damaged, "copy zeroed",
            repaired => repaired.AsSpan(0, 512).SequenceEqual(repaired.AsSpan(repaired.Length - 512)), "the copy at offset 0 is not the end footer after the rerun");
    }

    // An 8 MiB dynamic VHD with 3 MiB written at offset, and the content it reads.
    private static async Task<(string Image, byte[] Original)> WrittenImage(TempDirectory dir, int offset, int seed)
    {
        string image = dir.File("d.vhd"), data = dir.File("d.bin");
        await CliRunner.OkAsync("create", image, "--size", "8M");
        File.WriteAllBytes(data, RandomData.Bytes(3 << 20, seed));
        await CliRunner.OkAsync("write", image, "--offset", offset.ToString(), "--input", data);
        return (image, Content(File.ReadAllBytes(image)));
    }

    // The one change an uninterrupted repair of the damaged bytes reports, and the file's length after it.
    private static (string Change, long Length) RepairOnce(string image, byte[] damaged)
    {
        var file = new CrashSimulationFile(image, damaged);
        string change;
        using (var layer = new VhdDriver().Open(file, writable: true)) change = Assert.Single(((IRepairable)layer).RepairMetadata());
        return (change, file.Length);
    }

    // Repairs the damaged bytes crashing at write 0, 1, ... until one repair runs through; each crash state, with and
    // without the unflushed writes, must read the original content, and a rerun must keep it and pass done().
    private static void CutAtEveryWrite(string image, byte[] original, byte[] damaged, string label, Func<byte[], bool> done, string notDone)
    {
        int cuts = 0;
        for (int cut = 0; ; cut++)
        {
            var file = new CrashSimulationFile(image, damaged) { FailAtWrite = cut };
            bool crashed = false;
            try
            {
                using var layer = new VhdDriver().Open(file, writable: true);
                ((IRepairable)layer).RepairMetadata();
                layer.Flush();
            }
            catch (DiskImageException e) when (e.Kind == ErrorKind.Io) { crashed = true; }
            foreach (var (kept, bytes) in new[] { ("every pending write kept", file.CurrentContent()), ("no pending write kept", file.AfterPowerLoss([])) })
            {
                string when = $"{label}, cut at write {cut}, {kept}";
                Assert.True(original.AsSpan().SequenceEqual(Content(bytes)), $"{when}: the content changed");
                var rerun = new CrashSimulationFile(image, bytes);
                using (var layer = new VhdDriver().Open(rerun, writable: true))
                {
                    ((IRepairable)layer).RepairMetadata();
                    layer.Flush();
                }
                byte[] repaired = rerun.CurrentContent();
                Assert.True(done(repaired), $"{when}: {notDone}");
                Assert.True(original.AsSpan().SequenceEqual(Content(repaired)), $"{when}: the rerun changed the content");
            }
            if (!crashed) break;
            cuts++;
        }
        Assert.True(cuts >= 1, "the repair must write at least once");
    }

    // The whole virtual disk read from a VHD file's bytes.
    private static byte[] Content(byte[] fileBytes)
    {
        using var layer = new VhdDriver().Open(new CrashSimulationFile("d.vhd", fileBytes) { CanWrite = false }, writable: false);
        using var chain = new DiskChain(new List<IDiskLayer> { layer });
        var all = new byte[layer.VirtualSize];
        chain.Read(0, all);
        return all;
    }
}
