using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.Operations;
using DiskSnapshotEngine.Tests.Infrastructure;
using FsCheck;
using FsCheck.Fluent;

namespace DiskSnapshotEngine.Tests.Formats.Vhdx;

/// <summary>
/// Random scripts of writes, in-place resizes (grow and shrink, unaligned sizes included) and new disk ids on one
/// VHDX, against a flat in-memory disk: after every step the image reads exactly as the model; a shrink either
/// succeeds and dropped only zeros, or is refused with the file unchanged; at the end qemu-img finds the file sound
/// and equal to the model.
/// </summary>
public class VhdxLifecycleModelTests
{
    private enum Kind { Write, Resize, NewId }

    private sealed record Step(Kind Kind, long A, int B, int Seed);

    private const long MaxSize = 24L << 20;

    private static Gen<Step> Steps() =>
        Gen.Frequency(
            (4, from offset in Gen.Choose(0, (int)MaxSize - 1)
                from length in Gen.Frequency((3, Gen.Choose(1, 5000)), (2, Gen.Choose(1, 3 << 20)))
                from seed in Gen.Choose(1, int.MaxValue - 1)
                select new Step(Kind.Write, offset, length, seed)),
            (3, from sectors in Gen.Choose(1, (int)(MaxSize / 512))
                select new Step(Kind.Resize, sectors * 512L, 0, 0)),
            (1, Gen.Constant(new Step(Kind.NewId, 0, 0, 0))));

    [RequiresToolFact("qemu-img")]
    public void Writes_resizes_and_new_ids_read_back_like_a_flat_disk()
    {
        var scripts = from count in Gen.Choose(1, 10) from steps in Gen.ArrayOf(Steps(), count) select steps;
        Prop.ForAll(scripts.ToArbitrary(), Run).Check(Config.QuickThrowOnFailure.WithMaxTest(25));
    }

    private static void Run(Step[] steps)
    {
        using var dir = new TempDirectory("vhdx-life-model");
        string path = dir.File("disk.vhdx");
        var model = new byte[(5L << 20) + 1536];
        DiskImage.Create(path, new ImageCreateOptions(model.Length, BlockSize: 1 << 20)).Dispose();
        foreach (var s in steps)
        {
            switch (s.Kind)
            {
                case Kind.Write:
                {
                    long offset = s.A % model.Length;
                    int length = (int)Math.Min(s.B, model.Length - offset);
                    var data = new byte[length];
                    new Random(s.Seed).NextBytes(data);
                    using (var chain = DiskImage.Open(path, OpenOptions.ReadWrite)) chain.Write(offset, data);
                    data.CopyTo(model, offset);
                    break;
                }
                case Kind.Resize:
                {
                    var before = File.ReadAllBytes(path);
                    try
                    {
                        var r = Resize.RunAsync(path, s.A, shrink: true).GetAwaiter().GetResult();
                        Assert.True(r.InPlace, $"resize to {s.A} was not in place");
                        // A shrink that succeeded dropped nothing but zeros.
                        if (s.A < model.Length) Assert.Equal(-1, model.AsSpan((int)s.A).IndexOfAnyExcept((byte)0));
                        Array.Resize(ref model, (int)s.A);
                    }
                    catch (DiskImageException e) when (e.Kind == ErrorKind.InvalidArgument && s.A < model.Length)
                    {
                        Assert.Contains("data lies at offset", e.Message);
                        Assert.Equal(before, File.ReadAllBytes(path));
                    }
                    break;
                }
                case Kind.NewId:
                {
                    Guid old;
                    using (var l = DiskImage.OpenLayer(path, false)) old = l.Identity.Id;
                    var r = SetIdentity.NewId(path);
                    Assert.Equal(old, r.OldId);
                    using (var l = DiskImage.OpenLayer(path, false)) Assert.Equal(r.NewId, l.Identity.Id);
                    break;
                }
            }
            using var check = DiskImage.Open(path);
            Assert.Equal(model.Length, check.VirtualSize);
            var content = new byte[model.Length];
            check.Read(0, content);
            Assert.Equal(-1, Operations.OpsKit.FirstDifference(model, content));
            Assert.False(check.Check().HasErrors, string.Join("; ", check.Check().Problems));
        }
        ExternalTool.RunChecked("qemu-img", "check", path);
        var raw = dir.File("model.raw");
        File.WriteAllBytes(raw, model);
        ExternalTool.RunChecked("qemu-img", "compare", "-F", "raw", path, raw);
    }
}
