using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.Formats.Vhd;
using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Formats.Vhd;

/// <summary>
/// check --repair of a VHD whose end footer is cut (by a whole footer or part of one), cut in turn after every write:
/// each file a crash leaves, with or without its unflushed writes, reopens with the original content, and a rerun of
/// the repair then leaves the same content and a footer at the end.
/// </summary>
public sealed class VhdRepairCrashTests
{
    [Theory]
    [InlineData(512)]
    [InlineData(200)]
    public async Task A_repair_cut_at_every_write_keeps_the_content_and_a_rerun_finishes_it(int truncatedBy)
    {
        using var dir = new TempDirectory("vhd-repair-crash");
        string image = dir.File("d.vhd"), data = dir.File("d.bin");
        await CliRunner.OkAsync("create", image, "--size", "8M");
        File.WriteAllBytes(data, RandomData.Bytes(3 << 20, seed: 12));
        await CliRunner.OkAsync("write", image, "--offset", "700000", "--input", data);
        byte[] original = Content(File.ReadAllBytes(image));
        using (var f = new FileStream(image, FileMode.Open)) f.SetLength(f.Length - truncatedBy);
        byte[] damaged = File.ReadAllBytes(image);
        Assert.Equal(original, Content(damaged));

        var whole = new CrashSimulationFile(image, damaged);
        IReadOnlyList<string> changes;
        using (var layer = new VhdDriver().Open(whole, writable: true)) changes = ((IRepairable)layer).RepairMetadata();
        Assert.Equal($"hard disk footer at offset {whole.Length - 512} (the end of the file): written back from its copy at offset 0", Assert.Single(changes));

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
                string when = $"truncated by {truncatedBy}, cut at write {cut}, {kept}";
                Assert.True(original.AsSpan().SequenceEqual(Content(bytes)), $"{when}: the content changed");
                var rerun = new CrashSimulationFile(image, bytes);
                using (var layer = new VhdDriver().Open(rerun, writable: true))
                {
                    ((IRepairable)layer).RepairMetadata();
                    layer.Flush();
                }
                byte[] repaired = rerun.CurrentContent();
                Assert.True(VhdFooter.HasCookie(repaired.AsSpan(repaired.Length - 512)), $"{when}: no footer at the end after the rerun");
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
