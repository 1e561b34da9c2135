using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.Formats.Vdi;
using DiskSnapshotEngine.Operations;
using DiskSnapshotEngine.Tests.Infrastructure;
using FsCheck;
using FsCheck.Fluent;

namespace DiskSnapshotEngine.Tests.Block;

/// <summary>
/// The seal's record of the sole linked clone: its encodings (whole id in the VHDX item and qcow2 extension, a 48-bit
/// key in the 16-byte VDI record), old seals read as "unknown children", the record kept where the real tools rewrite
/// the file, and two clones made at once never both recorded as the sole one.
/// </summary>
public class SoleChildRecordTests
{
    // Private (0600): nobody else may read it, so its first clone is recorded (FileNode.ReadableByNonWriters).
    private static string MakeBase(TempDirectory dir, string name)
    {
        string path = SealMarkTests.MakeBase(dir, name);
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        return path;
    }

    private static (SealReasons Seal, SoleChild Sole, Guid CloneId) Read(string path)
    {
        using var l = DiskImage.OpenLayer(path, writable: false);
        return (Seals.Of(l), Seals.SoleChildOf(l), Seals.CloneIdOf(l));
    }

    [Fact]
    public void Both_encodings_round_trip_and_old_or_damaged_values_name_no_sole_child()
    {
        var id = Guid.NewGuid();
        foreach (var seal in new[] { SealReasons.Golden, SealReasons.Snapshot, SealReasons.Golden | SealReasons.Snapshot })
        {
            Assert.Equal((seal, SoleChild.Of(id)), SealValue.Parse(SealValue.ToBytes(seal, SoleChild.Of(id))));
            var (shortSeal, shortSole) = SealValue.Parse(SealValue.ToShortBytes(seal, SoleChild.Of(id)));
            Assert.Equal(seal, shortSeal);
            Assert.True(shortSole.Is(id));
            Assert.False(shortSole.Is(Guid.NewGuid()));
            Assert.Equal(Guid.Empty, shortSole.Id);
            // Seals written before the record existed: (reasons, ~reasons) alone.
            var old = new byte[8];
            BitConverter.TryWriteBytes(old, (uint)seal);
            BitConverter.TryWriteBytes(old.AsSpan(4), ~(uint)seal);
            Assert.Equal((seal, SoleChild.Unknown), SealValue.Parse(old));
        }
        Assert.Equal((SealReasons.None, SoleChild.Unknown), SealValue.Parse(SealValue.ToShortBytes(SealReasons.None, SoleChild.Of(id))));
        Assert.Equal((SealReasons.None, SoleChild.Unknown), SealValue.Parse(SealValue.ToBytes(SealReasons.None, SoleChild.Of(id))));
        var torn = SealValue.ToShortBytes(SealReasons.Snapshot, SoleChild.Of(id));
        torn[1] ^= 0x10;
        Assert.Equal((SealReasons.Golden, SoleChild.Unknown), SealValue.Parse(torn)); // a damaged mark protects
        Assert.Equal((SealReasons.Golden, SoleChild.Unknown), SealValue.Parse(new byte[13]));
        Assert.False(SoleChild.Unknown.Is(Guid.Empty));
        Assert.False(SoleChild.Of(Guid.Empty).IsKnown);
    }

    private static readonly Gen<byte[]> s_bytes16 = Gen.ArrayOf(ArbMap.Default.GeneratorFor<byte>(), 16);

    [Fact]
    public void Every_seal_and_clone_id_round_trips_through_both_forms()
    {
        var cases = from reasons in Gen.Choose(1, 3)
                    from id in s_bytes16
                    select ((SealReasons)reasons, new Guid(id));
        Prop.ForAll(cases.ToArbitrary(), c =>
        {
            var (seal, id) = c;
            var full = SealValue.Parse(SealValue.ToBytes(seal, SoleChild.Of(id)));
            var (shortSeal, shortSole) = SealValue.Parse(SealValue.ToShortBytes(seal, SoleChild.Of(id)));
            return full == (seal, SoleChild.Of(id)) && shortSeal == seal && shortSole.IsKnown == (id != Guid.Empty) && (id == Guid.Empty || shortSole.Is(id));
        }).QuickCheckThrowOnFailure();
    }

    /// <summary>
    /// Whatever the bytes (random, or a valid value with one byte changed), parsing never throws, and only a valid
    /// "unsealed" value reads as unsealed: a torn or foreign value protects the image.
    /// </summary>
    [Fact]
    public void Only_a_valid_unsealed_value_reads_as_unsealed()
    {
        var valid = Gen.Elements(
            SealValue.ToBytes(SealReasons.Golden, SoleChild.Of(Guid.NewGuid())), SealValue.ToBytes(SealReasons.None),
            SealValue.ToShortBytes(SealReasons.Golden, SoleChild.Of(Guid.NewGuid())), SealValue.ToShortBytes(SealReasons.None),
            SealValue.ToBytes(SealReasons.Snapshot)[..8]);
        var mutated = from v in valid
                      from at in Gen.Choose(0, 7)
                      from value in ArbMap.Default.GeneratorFor<byte>()
                      select Mutate(v, at, value);
        var random = Gen.Elements(0, 7, 8, 24, 25).SelectMany(n => Gen.ArrayOf(ArbMap.Default.GeneratorFor<byte>(), n));
        Prop.ForAll(Gen.OneOf(mutated, random).ToArbitrary(), b =>
        {
            var (seal, sole) = SealValue.Parse(b);
            bool oldUnsealed = b.Length is 8 or 24 && BitConverter.ToUInt32(b, 0) == 0 && BitConverter.ToUInt32(b, 4) == uint.MaxValue;
            bool shortUnsealed = b.Length == 8 && b[0] == 0x80 && b[1] == 0x7F;
            return ((uint)seal & ~3u) == 0 && (seal == SealReasons.None) == (oldUnsealed || shortUnsealed) && (seal != SealReasons.None || !sole.IsKnown);
        }).QuickCheckThrowOnFailure();
    }

    private static byte[] Mutate(byte[] value, int at, byte b)
    {
        var copy = (byte[])value.Clone();
        copy[at] = b;
        return copy;
    }

    [Theory]
    [InlineData("vhdx")]
    [InlineData("vdi")]
    [InlineData("qcow2")]
    public void The_first_clone_is_recorded_a_second_makes_the_record_unknown_and_seal_keeps_it_unknown(string ext)
    {
        using var dir = new TempDirectory("sole-record");
        string parent = MakeBase(dir, "p." + ext);
        string first = dir.File("c1." + ext);
        DiskImage.CreateDifferencing(first, parent).Dispose();
        var (seal, sole, _) = Read(parent);
        Assert.Equal(SealReasons.Golden, seal);
        var firstId = Read(first).CloneId;
        Assert.NotEqual(Guid.Empty, firstId);
        Assert.True(sole.Is(firstId));
        Assert.Equal(ext == "vdi" ? Guid.Empty : firstId, sole.Id);

        DiskImage.CreateDifferencing(dir.File("c2." + ext), parent).Dispose();
        Assert.Equal((SealReasons.Golden, SoleChild.Unknown), (Read(parent).Seal, Read(parent).Sole));
        DiskImage.Unseal(parent);
        DiskImage.Seal(parent);
        Assert.Equal((SealReasons.Golden, SoleChild.Unknown), (Read(parent).Seal, Read(parent).Sole));
    }

    /// <summary>A VDI sealed by an older dse ("dse-seal" + reasons, ~reasons) stays golden with no sole clone: merging its clone is refused.</summary>
    [Fact]
    public async Task An_old_vdi_seal_reads_as_golden_with_unknown_children()
    {
        using var dir = new TempDirectory("sole-old-vdi");
        string parent = MakeBase(dir, "p.vdi"), child = dir.File("c.vdi");
        DiskImage.CreateDifferencing(child, parent).Dispose();
        var bytes = File.ReadAllBytes(parent);
        BitConverter.TryWriteBytes(bytes.AsSpan(480), 1u);
        BitConverter.TryWriteBytes(bytes.AsSpan(484), ~1u);
        File.WriteAllBytes(parent, bytes);
        Assert.Equal((SealReasons.Golden, SoleChild.Unknown), (Read(parent).Seal, Read(parent).Sole));
        var e = await Assert.ThrowsAsync<DiskImageException>(() => Merge.CommitAsync(child));
        Assert.Equal(ErrorKind.ReadOnly, e.Kind);
        Assert.Equal(bytes, File.ReadAllBytes(parent));
    }

    /// <summary>
    /// Recording the sole clone in a VDI writes only bytes 472..487: the pre-header and VDIHEADER1PLUS VirtualBox reads
    /// (0..471: uuidCreate, uuidModify, geometry...) stay byte for byte; qemu-img accepts the parent and qemu-io, which
    /// rewrites the first sector when it writes, keeps the record.
    /// </summary>
    [RequiresToolFact("qemu-img", "qemu-io")]
    public void The_vdi_record_stays_inside_its_16_bytes_and_qemu_keeps_it()
    {
        using var dir = new TempDirectory("sole-vdi-tools");
        string parent = MakeBase(dir, "p.vdi"), child = dir.File("c.vdi");
        var before = File.ReadAllBytes(parent);
        DiskImage.CreateDifferencing(child, parent).Dispose();
        var after = File.ReadAllBytes(parent);
        Assert.Equal(before.Length, after.Length);
        Assert.All(Enumerable.Range(0, before.Length).Where(i => before[i] != after[i]), i => Assert.InRange(i, 472, 487));
        Assert.Equal(before.AsSpan(0, 472).ToArray(), after.AsSpan(0, 472).ToArray());
        Assert.Equal("dse-seal"u8.ToArray(), after.AsSpan(472, 8).ToArray());
        ExternalTool.RunChecked("qemu-img", "check", parent); // (qemu opens no VDI child: "non-NULL link UUID")

        var childId = Read(child).CloneId;
        Assert.Equal(VdiSealRecord.Offset, 472);
        ExternalTool.RunChecked("qemu-io", "-f", "vdi", "-c", "write -P 0x33 4M 1M", parent);
        Assert.True(Read(parent).Sole.Is(childId));
    }

    /// <summary>
    /// A qcow2 child carries dse's id in an optional header extension: qemu-img check accepts it, and a header rewrite by
    /// qemu (amend) keeps it, so the parent's seal still recognises the clone.
    /// </summary>
    [RequiresToolFact("qemu-img")]
    public void A_qcow2_clone_keeps_its_dse_id_through_qemu_header_rewrites()
    {
        using var dir = new TempDirectory("sole-qcow2-tools");
        string parent = MakeBase(dir, "p.qcow2"), child = dir.File("c.qcow2");
        DiskImage.CreateDifferencing(child, parent).Dispose();
        var id = Read(child).CloneId;
        Assert.NotEqual(Guid.Empty, id);
        Assert.Equal(id, Read(parent).Sole.Id);
        ExternalTool.RunChecked("qemu-img", "check", child);
        ExternalTool.RunChecked("qemu-img", "check", parent);
        ExternalTool.RunChecked("qemu-img", "amend", "-f", "qcow2", "-o", "lazy_refcounts=on", child);
        ExternalTool.RunChecked("qemu-img", "amend", "-f", "qcow2", "-o", "lazy_refcounts=on", parent);
        Assert.Equal(id, Read(child).CloneId);
        Assert.True(Read(parent).Sole.Is(id));
        ExternalTool.RunChecked("qemu-img", "check", child);
    }

    /// <summary>Two clones made at once: the seal is computed under the parent's lock, so both never end up recorded as the sole one.</summary>
    [Theory]
    [InlineData("vhdx")]
    [InlineData("vdi")]
    public async Task Two_clones_made_at_once_are_never_both_the_sole_clone(string ext)
    {
        using var dir = new TempDirectory("sole-race");
        for (int round = 0; round < 6; round++)
        {
            string parent = MakeBase(dir, $"p{round}.{ext}");
            string a = dir.File($"a{round}.{ext}"), b = dir.File($"b{round}.{ext}");
            using var go = new Barrier(2);
            async Task<bool> Make(string path) => await Task.Run(() =>
            {
                go.SignalAndWait();
                try { DiskImage.CreateDifferencing(path, parent).Dispose(); return true; }
                catch (DiskImageException e) when (e.Kind == ErrorKind.Locked) { return false; }
            });
            var made = await Task.WhenAll(Make(a), Make(b));
            var (seal, sole, _) = Read(parent);
            Assert.Equal(SealReasons.Golden, seal);
            if (made[0] && made[1]) Assert.False(sole.IsKnown, $"round {round}: both clones exist but the seal names {sole}");
            else Assert.True(!sole.IsKnown || sole.Is(Read(made[0] ? a : b).CloneId), $"round {round}");
        }
    }
}
