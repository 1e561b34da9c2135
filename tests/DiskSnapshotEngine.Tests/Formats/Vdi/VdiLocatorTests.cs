using System.Buffers.Binary;
using System.Diagnostics;
using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Hypervisors.VirtualBox;
using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Formats.Vdi;

/// <summary>
/// A VDI linked clone made anywhere reopens anywhere (issue 10, section 4): dse's locator in the child names the parent
/// by relative and absolute path, the uuidLinkage check stays the authority, and a moved parent is still found with
/// --search-path or --vbox-registry. VirtualBox sees nothing of it: the record lies outside every structure it reads.
/// </summary>
public class VdiLocatorTests
{
    private const int ExitParentNotFound = 9;

    private static async Task<CliResult> Ok(params string[] args)
    {
        var r = await CliRunner.RunAsync(args);
        Assert.True(r.ExitCode == 0, $"dse {string.Join(' ', args)}: {r}");
        return r;
    }

    /// <summary>Runs the real dse process in <paramref name="workingDirectory"/> (paths on the command line relative to it).</summary>
    private static async Task<CliResult> RunIn(string workingDirectory, params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { WorkingDirectory = workingDirectory, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(CliRunner.DsePath);
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var o = p.StandardOutput.ReadToEndAsync();
        var e = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        return new CliResult(p.ExitCode, await o, await e, Array.Empty<byte>());
    }

    private static async Task<(string Golden, string Clone, byte[] Content)> Lab(TempDirectory dir)
    {
        Directory.CreateDirectory(dir.File("golden"));
        Directory.CreateDirectory(dir.File("labs"));
        string golden = dir.File("golden/g.vdi"), clone = dir.File("labs/l1.vdi");
        await Ok("create", golden, "--size", "8M");
        var data = new byte[1 << 20];
        new Random(11).NextBytes(data);
        File.WriteAllBytes(dir.File("g.bin"), data);
        await Ok("write", golden, "--offset", "2M", "--input", dir.File("g.bin"));
        await Ok("clone", "--linked", golden, clone);
        return (golden, clone, (await Ok("export", golden, "-")).StdOutBytes);
    }

    [Fact]
    public async Task A_linked_clone_made_in_another_folder_is_written_from_any_working_directory_without_flags()
    {
        using var dir = new TempDirectory("vdi-loc");
        var (_, clone, content) = await Lab(dir);
        File.WriteAllBytes(dir.File("x.bin"), new byte[] { 1, 2, 3 });
        foreach (var (cwd, path) in new[] { (dir.Path, "labs/l1.vdi"), (dir.File("labs"), "l1.vdi"), ("/", clone) })
        {
            var r = await RunIn(cwd, "write", path, "--offset", "0", "--input", dir.File("x.bin"));
            Assert.True(r.ExitCode == 0, $"from {cwd}: {r}");
        }
        content[0] = 1; content[1] = 2; content[2] = 3;
        Assert.Equal(content, (await Ok("export", clone, "-")).StdOutBytes);
    }

    [Fact]
    public async Task The_relative_path_is_tried_first_and_the_absolute_path_is_the_fallback()
    {
        using var dir = new TempDirectory("vdi-loc-move");
        var (golden, _, content) = await Lab(dir);
        // Only the clone moves: its relative path misses, the absolute path names the golden image.
        Directory.CreateDirectory(dir.File("elsewhere/deeper"));
        File.Move(dir.File("labs/l1.vdi"), dir.File("elsewhere/deeper/l1.vdi"));
        Assert.Equal(content, (await Ok("export", dir.File("elsewhere/deeper/l1.vdi"), "-")).StdOutBytes);
        using (var l = DiskImage.OpenLayer(dir.File("elsewhere/deeper/l1.vdi"), false))
            Assert.Equal(new[] { dir.File("elsewhere/golden/g.vdi"), golden }, l.ParentLink!.CandidatePaths);

        // Both folders move together: the absolute path misses, the relative one still names the golden image.
        using var other = new TempDirectory("vdi-loc-moved");
        File.Move(dir.File("elsewhere/deeper/l1.vdi"), dir.File("labs/l1.vdi"));
        Directory.Move(dir.File("golden"), other.File("golden"));
        Directory.Move(dir.File("labs"), other.File("labs"));
        Assert.Equal(content, (await Ok("export", other.File("labs/l1.vdi"), "-")).StdOutBytes);
    }

    [Fact]
    public async Task A_moved_parent_is_found_with_search_path_or_a_vbox_registry_and_not_without()
    {
        using var dir = new TempDirectory("vdi-loc-search");
        var (golden, clone, content) = await Lab(dir);
        Directory.CreateDirectory(dir.File("archive"));
        string moved = dir.File("archive/g-moved.vdi");
        File.Move(golden, moved);
        Directory.Delete(dir.File("golden"));

        var missing = await CliRunner.RunAsync("export", clone, "-");
        Assert.Equal(ExitParentNotFound, missing.ExitCode);
        Assert.Contains(golden, missing.StdErr); // names where the locator pointed

        Assert.Equal(content, (await Ok("export", clone, "-", "--search-path", dir.File("archive"))).StdOutBytes);

        Guid goldenId, cloneId;
        using (var g = DiskImage.OpenLayer(moved, false)) goldenId = g.Identity.Id;
        using (var c = DiskImage.OpenLayer(clone, false)) cloneId = c.Identity.Id;
        string vbox = dir.File("archive/m.vbox");
        File.WriteAllText(vbox, $$"""
            <?xml version="1.0"?>
            <VirtualBox xmlns="http://www.virtualbox.org/" version="1.19-linux">
              <Machine uuid="{{{Guid.NewGuid()}}}" name="m" OSType="Linux_64">
                <MediaRegistry><HardDisks>
                  <HardDisk uuid="{{{goldenId}}}" location="g-moved.vdi" format="VDI" type="MultiAttach">
                    <HardDisk uuid="{{{cloneId}}}" location="{{clone}}" format="VDI"/>
                  </HardDisk>
                </HardDisks></MediaRegistry>
              </Machine>
            </VirtualBox>
            """);
        Assert.Equal(content, (await Ok("export", clone, "-", "--vbox-registry", vbox)).StdOutBytes);
    }

    /// <summary>The header's identity is the authority: a path naming another image, or a damaged record, is passed over.</summary>
    [Fact]
    public async Task A_hint_naming_another_image_or_a_damaged_record_is_passed_over_for_the_identity_search()
    {
        using var dir = new TempDirectory("vdi-loc-hostile");
        var (golden, clone, content) = await Lab(dir);
        // The real parent goes beside the clone; an unrelated image takes its old name.
        File.Move(golden, dir.File("labs/g-real.vdi"));
        await Ok("create", golden, "--size", "8M");
        Assert.Equal(content, (await Ok("export", clone, "-")).StdOutBytes);

        // A record whose checksum does not match is no hint at all.
        var bytes = File.ReadAllBytes(clone);
        bytes[530] ^= 0x40;
        File.WriteAllBytes(clone, bytes);
        using (var l = DiskImage.OpenLayer(clone, false)) Assert.Empty(l.ParentLink!.CandidatePaths);
        Assert.Equal(content, (await Ok("export", clone, "-")).StdOutBytes);

        // A record naming the clone itself is passed over too (not a chain loop).
        using (var l = DiskImage.OpenLayer(clone, true))
        {
            var p = DiskImage.OpenLayer(dir.File("labs/g-real.vdi"), false);
            var self = new ParentDescriptor(clone, ImageFormat.Vdi, p.Identity, p.VirtualSize, p.LogicalSectorSize);
            p.Dispose();
            l.SetParent(self);
        }
        Assert.Equal(content, (await Ok("export", clone, "-")).StdOutBytes);
    }

    /// <summary>
    /// VirtualBox reads the pre-header and header (bytes 0-471), the blocks array at offBlocks and the data; the locator
    /// sits between the first sector and offBlocks. The structures VirtualBox reads are byte for byte those of the same
    /// child without a locator, and satisfy VirtualBox's own header checks (vdiValidateHeader).
    /// </summary>
    [Fact]
    public async Task The_structures_VirtualBox_reads_are_the_same_with_or_without_the_locator()
    {
        using var dir = new TempDirectory("vdi-loc-vbox");
        var (_, clone, _) = await Lab(dir);
        var with = File.ReadAllBytes(clone);
        File.Copy(clone, dir.File("plain.vdi"));
        VdiTestKit.RemoveLocator(dir.File("plain.vdi"));
        var plain = File.ReadAllBytes(dir.File("plain.vdi"));
        uint offBlocks = BinaryPrimitives.ReadUInt32LittleEndian(with.AsSpan(340)), offData = BinaryPrimitives.ReadUInt32LittleEndian(with.AsSpan(344));
        uint cbHeader = BinaryPrimitives.ReadUInt32LittleEndian(with.AsSpan(72)), cBlocks = BinaryPrimitives.ReadUInt32LittleEndian(with.AsSpan(384));
        Assert.True(with.AsSpan(0, 72 + (int)cbHeader).SequenceEqual(plain.AsSpan(0, 72 + (int)cbHeader)));
        Assert.True(with.AsSpan((int)offBlocks).SequenceEqual(plain.AsSpan((int)offBlocks)));
        Assert.Equal("dse-link"u8.ToArray(), with.AsSpan(512, 8).ToArray());
        int recordEnd = 528 + BinaryPrimitives.ReadUInt16LittleEndian(with.AsSpan(524)) + BinaryPrimitives.ReadUInt16LittleEndian(with.AsSpan(526));
        Assert.True(recordEnd <= offBlocks, $"the locator ends at {recordEnd}, past offBlocks {offBlocks}");
        // vdiValidateHeader: cbHeader >= sizeof(VDIHEADER1), offBlocks after the header, offData after the blocks array,
        // no unknown image flags, a 512-byte LCHS sector, a power-of-two block size, a non-null uuidCreate and uuidModify.
        Assert.True(cbHeader >= 384);
        Assert.True(offBlocks >= 72 + 384);
        Assert.True(offData >= offBlocks + 4 * cBlocks);
        Assert.Equal(0u, BinaryPrimitives.ReadUInt32LittleEndian(with.AsSpan(80)));
        Assert.Equal(512u, BinaryPrimitives.ReadUInt32LittleEndian(with.AsSpan(456 + 12)));
        uint cbBlock = BinaryPrimitives.ReadUInt32LittleEndian(with.AsSpan(376));
        Assert.Equal(0u, cbBlock & (cbBlock - 1));
        Assert.NotEqual(Guid.Empty, new Guid(with.AsSpan(392, 16)));
        Assert.NotEqual(Guid.Empty, new Guid(with.AsSpan(408, 16)));
    }

    [Fact]
    public async Task Rebase_rewrites_the_locator_to_the_new_parent()
    {
        using var dir = new TempDirectory("vdi-loc-rebase");
        Operations.OpsKit.CreateBase(dir.File("a.vdi"), 4 << 20);
        File.Copy(dir.File("a.vdi"), dir.File("far-a.vdi"));
        Directory.CreateDirectory(dir.File("kids"));
        Operations.OpsKit.CreateChild(dir.File("kids/c.vdi"), dir.File("a.vdi"));
        await DiskSnapshotEngine.Operations.Rebase.RunAsync(dir.File("kids/c.vdi"), dir.File("far-a.vdi"), unsafeMode: true);
        using var c = DiskImage.OpenLayer(dir.File("kids/c.vdi"), false);
        Assert.Equal(new[] { dir.File("far-a.vdi") }, c.ParentLink!.CandidatePaths);
        File.Delete(dir.File("a.vdi"));
        using var chain = DiskImage.Open(dir.File("kids/c.vdi"));
        Assert.Equal(dir.File("far-a.vdi"), chain.Layers[1].Path);
    }
}
