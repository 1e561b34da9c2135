using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Fixtures;

/// <summary>
/// Every image the suite trusts is listed in fixtures/ with its hashes (fixtures/README.md), and the lists are true:
/// the reference images read as their recorded content, and the real images in ../shared/fixtures are the files
/// the manifest names, byte for byte.
/// </summary>
public sealed class FixtureManifestTests
{
    private const long ReferenceLimit = 16 << 10; // "a few KiB compressed" each
    private const long ContentLimit = 256L << 20; // shared images whose content this test hashes (the larger ones: their format's read tests)

    private static string ReferenceDirectory => Path.Combine(RepositoryFixtures.Directory, "reference");

    public static TheoryData<string> ReferenceImages() =>
        new(RepositoryFixtures.ReadManifest(Path.Combine(ReferenceDirectory, "manifest.tsv")).Select(r => r["file"]));

    [Theory]
    [MemberData(nameof(ReferenceImages))]
    public void A_reference_image_reads_as_its_recorded_content_and_checks_without_errors(string file)
    {
        var row = RepositoryFixtures.ReadManifest(Path.Combine(ReferenceDirectory, "manifest.tsv")).Single(r => r["file"] == file);
        string source = Path.Combine(ReferenceDirectory, file);
        Assert.True(new FileInfo(source).Length <= ReferenceLimit, $"{file} is {new FileInfo(source).Length} bytes compressed");
        using var dir = new TempDirectory("reference-fixture");
        // A child's parents are the files its name extends ("dse-child.vhdx" over "dse.vhdx"); decompress the whole set.
        foreach (var image in Directory.GetFiles(ReferenceDirectory, "*.gz")) SharedFixtures.Decompress(image, dir.Path);
        using var chain = DiskImage.Open(Path.Combine(dir.Path, file[..^".gz".Length]));
        Assert.Equal(long.Parse(row["virtual size"]), chain.VirtualSize);
        Assert.Equal(row["content sha256"], ContentHash.Of(chain));
        // Without errors, not clean: dse lists as a leak the 4 MiB of payload area qemu's VHDX leaves to no BAT entry.
        var report = chain.Check();
        Assert.False(report.HasErrors, string.Join("; ", report.Problems));
    }

    [Fact]
    public void Every_reference_image_is_in_the_manifest()
    {
        var listed = RepositoryFixtures.ReadManifest(Path.Combine(ReferenceDirectory, "manifest.tsv")).Select(r => r["file"]).Order();
        var present = Directory.GetFiles(ReferenceDirectory, "*.gz").Select(Path.GetFileName).Order();
        Assert.Equal(listed, present);
    }

    [SharedFixtureFact]
    public void The_shared_images_are_the_files_the_manifest_names()
    {
        var rows = RepositoryFixtures.ReadManifest(Path.Combine(RepositoryFixtures.Directory, "shared.tsv"));
        string shared = SharedFixtures.FixturesDirectory!;
        var present = Directory.GetFiles(shared).Select(Path.GetFileName).Where(n => n != "README.md").Order();
        Assert.Equal(rows.Select(r => r["file"]).Order(), present);
        foreach (var row in rows)
            Assert.True(row["file sha256"] == ContentHash.OfFile(Path.Combine(shared, row["file"])), $"{row["file"]} is not the file fixtures/shared.tsv names");
    }

    [SharedFixtureFact]
    public void The_small_shared_images_read_as_their_recorded_content()
    {
        var rows = RepositoryFixtures.ReadManifest(Path.Combine(RepositoryFixtures.Directory, "shared.tsv"));
        foreach (var row in rows.Where(r => long.Parse(r["virtual size"]) <= ContentLimit))
        {
            using var dir = new TempDirectory("shared-fixture");
            using var chain = DiskImage.Open(SharedFixtures.Extract(row["file"], dir.Path));
            Assert.Equal(long.Parse(row["virtual size"]), chain.VirtualSize);
            Assert.True(row["content sha256"] == ContentHash.Of(chain), $"{row["file"]}: content differs from fixtures/shared.tsv");
        }
    }
}
