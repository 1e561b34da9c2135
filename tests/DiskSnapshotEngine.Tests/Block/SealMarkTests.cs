using System.Buffers.Binary;
using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.Formats.Vdi;
using DiskSnapshotEngine.Formats.Vhdx;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Block;

/// <summary>
/// The seal mark in the file: a VHDX user metadata item written through the log, a VDI record after the header. Sealing
/// never changes the content version children check (DataWriteGuid, uuidModify), survives a crash at any write as the
/// old or the new mark, and leaves the file readable by qemu-img and libvhdi.
/// </summary>
public class SealMarkTests
{
    private const long Size = 8L << 20;

    /// <summary>An 8 MiB base image whose first MiB holds 0x5A (shared with <see cref="SoleChildRecordTests"/>).</summary>
    internal static string MakeBase(TempDirectory dir, string name)
    {
        string path = dir.File(name);
        using var l = DiskImage.Create(path, new ImageCreateOptions(Size, BlockSize: 1 << 20));
        l.Write(0, Enumerable.Repeat((byte)0x5A, 1 << 20).ToArray());
        l.Flush();
        return path;
    }

    private static (ImageIdentity Identity, SealReasons Seal) Read(string path)
    {
        using var l = DiskImage.OpenLayer(path, writable: false);
        return (l.Identity, Seals.Of(l));
    }

    [Theory]
    [InlineData("vhdx")]
    [InlineData("vdi")]
    [InlineData("qcow2")]
    public void Sealing_keeps_the_version_so_existing_children_stay_linked(string ext)
    {
        using var dir = new TempDirectory("seal-version");
        string parent = MakeBase(dir, "p." + ext);
        DiskImage.CreateDifferencing(dir.File("first." + ext), parent, sealParentAs: SealReasons.None).Dispose();
        var before = Read(parent);
        Assert.Equal(SealReasons.None, before.Seal);

        Assert.Equal(SealReasons.None, DiskImage.Seal(parent));
        var after = Read(parent);
        Assert.Equal(SealReasons.Golden, after.Seal);
        Assert.Equal(before.Identity, after.Identity);
        using (var chain = DiskImage.Open(dir.File("first." + ext))) Assert.Equal(2, chain.Layers.Count);

        Assert.Equal(SealReasons.Golden, DiskImage.Unseal(parent));
        Assert.Equal((before.Identity, SealReasons.None), Read(parent));
        Assert.True(DiskImage.Open(dir.File("first." + ext)).Check().IsClean);
    }

    /// <summary>The VHDX seal goes through the log: a cut at every write, and any power loss, leaves the old or the new mark, the same DataWriteGuid and a clean file.</summary>
    [Fact]
    public void A_vhdx_seal_cut_at_every_write_leaves_the_old_or_the_new_mark()
    {
        using var dir = new TempDirectory("seal-crash");
        string path = MakeBase(dir, "g.vhdx");
        var original = File.ReadAllBytes(path);
        var version = Read(path).Identity;
        string materialised = dir.File("after.vhdx");
        var seen = new HashSet<SealReasons>();
        for (int cut = 0; ; cut++)
        {
            var sim = new CrashSimulationFile(path, original);
            var layer = (VhdxLayer)new VhdxDriver().Open(sim, writable: true);
            sim.ResetCounters();
            sim.FailAtWrite = cut;
            try
            {
                layer.SetSeal(SealReasons.Golden);
                layer.Dispose();
            }
            catch (DiskImageException e) when (sim.Crashed)
            {
                Assert.Equal(ErrorKind.Io, e.Kind);
                try { layer.Dispose(); } catch (DiskImageException) { }
            }
            var rng = new Random(cut);
            foreach (var bytes in new[] { sim.CurrentContent(), sim.AfterPowerLoss(Array.Empty<int>()), sim.AfterRandomPowerLoss(rng), sim.AfterRandomPowerLoss(rng) })
            {
                File.WriteAllBytes(materialised, bytes);
                var (identity, seal) = Read(materialised);
                Assert.Equal(version, identity);
                Assert.True(seal is SealReasons.None or SealReasons.Golden, $"cut at write {cut}: seal {seal}");
                seen.Add(seal);
                using (var rw = DiskImage.OpenLayer(materialised, writable: true)) Assert.Equal(seal, Seals.Of(rw)); // replay agrees
                using var check = DiskImage.Open(materialised);
                Assert.True(check.Check().Problems.All(p => p.Severity != CheckSeverity.Error), $"cut at write {cut}: {string.Join("; ", check.Check().Problems)}");
            }
            if (!sim.Crashed) break;
        }
        Assert.Equal(new[] { SealReasons.None, SealReasons.Golden }, seen.Order());
    }

    [Fact]
    public void The_vdi_seal_is_one_small_write_outside_every_VirtualBox_structure()
    {
        using var dir = new TempDirectory("seal-vdi");
        string path = MakeBase(dir, "g.vdi");
        var before = File.ReadAllBytes(path);
        DiskImage.Seal(path);
        var after = File.ReadAllBytes(path);
        var changed = Enumerable.Range(0, before.Length).Where(i => before[i] != after[i]).ToList();
        // Only the record at 472..487: VirtualBox reads and rewrites 0..471 (pre-header + VDIHEADER1PLUS) and its blocks
        // array starts at offBlocks (1 MiB); qemu carries the first sector's tail over unchanged.
        Assert.All(changed, i => Assert.InRange(i, 472, 487));
        Assert.Equal("dse-seal"u8.ToArray(), after.AsSpan(472, 8).ToArray());

        // A damaged record still names this engine's mark: it reads as golden (a damaged mark errs on the side of protection).
        after[484] ^= 0xFF;
        File.WriteAllBytes(path, after);
        Assert.Equal(SealReasons.Golden, Read(path).Seal);
    }

    [Fact]
    public void A_damaged_vhdx_seal_item_reads_as_golden_and_unseal_repairs_it()
    {
        using var dir = new TempDirectory("seal-vhdx-damaged");
        string path = MakeBase(dir, "g.vhdx");
        DiskImage.Seal(path);
        var bytes = File.ReadAllBytes(path);
        // The item's value: find "golden" (1) followed by its check (~1) in the metadata region (2 MiB .. 3 MiB).
        int at = -1;
        for (int i = 2 << 20; i < 3 << 20; i += 8)
            if (BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(i)) == 1 && BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(i + 4)) == ~1u) { at = i; break; }
        Assert.True(at > 0, "the seal item's value was not found in the metadata region");
        bytes[at + 4] ^= 0x01;
        File.WriteAllBytes(path, bytes);
        Assert.Equal(SealReasons.Golden, Read(path).Seal);
        DiskImage.Unseal(path);
        Assert.Equal(SealReasons.None, Read(path).Seal);
    }

    [Fact]
    public void A_vdi_whose_header_leaves_no_room_cannot_be_sealed_and_says_why()
    {
        using var dir = new TempDirectory("seal-vdi-noroom");
        string path = MakeBase(dir, "g.vdi");
        var bytes = File.ReadAllBytes(path);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(72), 440); // cbHeader 440: the header would reach into the record
        File.WriteAllBytes(path, bytes);
        var e = Assert.Throws<DiskImageException>(() => DiskImage.Seal(path));
        Assert.Equal(ErrorKind.Unsupported, e.Kind);
        Assert.Equal("VDIHEADER1", e.Structure);
        Assert.Equal(bytes, File.ReadAllBytes(path));
    }

    [RequiresToolFact("qemu-img", "vhdiinfo")]
    public void Real_tools_read_sealed_images_as_before()
    {
        using var dir = new TempDirectory("seal-tools");
        foreach (var ext in new[] { "vhdx", "vdi", "qcow2" })
        {
            string path = MakeBase(dir, "g." + ext);
            DiskImage.CreateDifferencing(dir.File("c." + ext), path).Dispose(); // seals it
            Assert.Equal(SealReasons.Golden, Read(path).Seal);
            ExternalTool.RunChecked("qemu-img", "check", path);
            var info = ExternalTool.RunChecked("qemu-img", "info", "--output=json", path);
            Assert.Contains("\"virtual-size\": 8388608", info);
            // Same bytes as dse reads.
            string raw = dir.File(ext + ".raw");
            ExternalTool.RunChecked("qemu-img", "convert", "-O", "raw", path, raw);
            var data = File.ReadAllBytes(raw);
            Assert.All(data.AsSpan(0, 1 << 20).ToArray(), b => Assert.Equal(0x5A, b));
        }
        var vhdi = ExternalTool.RunChecked("vhdiinfo", dir.File("g.vhdx"));
        Assert.Contains("(8388608 bytes)", vhdi);
        // qemu-io also writes a sealed VDI (it knows no seal) and keeps the record: it rewrites the first sector as read.
        ExternalTool.RunChecked("qemu-io", "-f", "vdi", "-c", "write -P 0x33 4M 1M", dir.File("g.vdi"));
        Assert.Equal(SealReasons.Golden, Read(dir.File("g.vdi")).Seal);
    }
}
