using System.IO.Compression;
using DiskSnapshotEngine.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Cli;

/// <summary>
/// Found walking issue 13 as a new user: a file that is no disk image but holds one (compressed, archived), or is a
/// CD image, is named with the way to what dse reads, not the hint to convert it with qemu-img.
/// </summary>
public class ForeignFileHintTests
{
    [Fact]
    public async Task A_compressed_archived_or_cd_file_gets_the_way_to_its_disk_not_a_convert_hint()
    {
        using var dir = new TempDirectory("foreign");
        string gz = dir.File("disk.img.gz");
        using (var f = File.Create(gz))
        using (var z = new GZipStream(f, CompressionLevel.Fastest))
            z.Write(new byte[65536]);
        var tar = new byte[10240];
        "ustar"u8.CopyTo(tar.AsSpan(257));
        File.WriteAllBytes(dir.File("vm.ova"), tar);
        var iso = new byte[0x9000];
        "CD001"u8.CopyTo(iso.AsSpan(0x8001));
        File.WriteAllBytes(dir.File("cd.iso"), iso);

        foreach (var (file, named, hint) in new[]
        {
            (gz, "gzip", "decompress"),
            (dir.File("vm.ova"), "tar", "extract"),
            (dir.File("cd.iso"), "ISO 9660", "CD/DVD drive"),
        })
        {
            var r = await CliRunner.RunAsync("info", file);
            Assert.True(r.ExitCode == ExitCodes.Unsupported, $"{file}: {r}");
            Assert.Contains(named, r.StdErr);
            Assert.Contains(hint, r.StdErr);
            Assert.DoesNotContain("qemu-img convert", r.StdErr);
        }
    }
}
