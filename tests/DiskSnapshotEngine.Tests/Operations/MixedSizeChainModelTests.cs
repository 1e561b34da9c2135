using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.Operations;
using DiskSnapshotEngine.Tests.Formats.Qcow2;
using DiskSnapshotEngine.Tests.Infrastructure;
using FsCheck;
using FsCheck.Fluent;
using Xunit.Abstractions;

namespace DiskSnapshotEngine.Tests.Operations;

public enum SizedStepKind { Write, Zero, Child, Resize, Merge, Pull, Reset, Detach, Compact, Rebase }

/// <summary>One step; Size is the new size of a resize (sector-aligned), Seed the data of a write.</summary>
public sealed record SizedStep(SizedStepKind Kind, long Offset, int Length, int Seed, long Size)
{
    public override string ToString() => Kind switch
    {
        SizedStepKind.Write => $"Write({Offset}, +{Length}, seed {Seed})",
        SizedStepKind.Zero => $"Zero({Offset}, +{Length})",
        SizedStepKind.Resize => $"Resize({Size})",
        _ => Kind.ToString(),
    };
}

/// <summary>
/// Chains whose layers differ in size, driven through the public operations: random writes, new children, resizes
/// of the top (grow and --shrink), commits into the parent, pulls, resets, detaches, compacts and rebases (onto the
/// grandparent) of the top, over VHDX, qcow2, VDI and VHD (whose children
/// refuse a resize), and over qcow2 images qemu made (extended L2 entries; version 2; 1-bit refcounts; a compressed base) and over fixed VHD and VHDX bases; a raw disk alone gets the writes and resizes. At the end the real tools agree (<see cref="RealTools"/>). The chain must read exactly
/// like a flat model that zero-extends on growth and cuts on shrink; a commit of a smaller top leaves the parent's
/// size and its data past the top's end (qemu-img commit does the same). Refusals are checked against the model:
/// a shrink over non-zero data must be refused, and a refusal of growth is allowed only over a larger parent.
/// </summary>
public class MixedSizeChainModelTests(ITestOutputHelper output)
{
    private const long BaseSize = (3L << 20) + 7 * 512;

    [RequiresToolTheory("qemu-img")]
    [InlineData(".vhdx")]
    [InlineData(".qcow2")]
    [InlineData(".vdi")]
    [InlineData(".vhd")]
    [InlineData(".qcow2", "extended_l2=on,cluster_size=16k")]
    [InlineData(".qcow2", "compat=0.10,cluster_size=4k")]
    [InlineData(".qcow2", "refcount_bits=1,cluster_size=4k")]
    [InlineData(".qcow2", Compressed)]
    [InlineData(".vhd", FixedBase)]
    [InlineData(".vhdx", FixedBase)]
    [InlineData(".img")]
    public void Random_writes_and_resizes_over_layers_of_different_sizes_equal_a_flat_model(string ext, string? qemuOptions = null)
    {
        var steps = Gen.Frequency(
            (6, from offset in Gen.Choose(0, (int)(6L << 20))
                from length in Gen.Frequency((3, Gen.Choose(1, 5000)), (2, Gen.Choose(1, 1 << 20)))
                from seed in Gen.Choose(1, int.MaxValue - 1)
                select new SizedStep(SizedStepKind.Write, offset, length, seed, 0)),
            (1, from offset in Gen.Choose(0, (int)(6L << 20))
                from length in Gen.Choose(1, 2 << 20)
                select new SizedStep(SizedStepKind.Zero, offset, length, 0, 0)),
            (2, Gen.Constant(new SizedStep(SizedStepKind.Child, 0, 0, 0, 0))),
            (3, from sectors in Gen.Choose(1, 12 * 2048) select new SizedStep(SizedStepKind.Resize, 0, 0, 0, sectors * 512L)),
            (1, Gen.Constant(new SizedStep(SizedStepKind.Merge, 0, 0, 0, 0))),
            (1, Gen.Constant(new SizedStep(SizedStepKind.Pull, 0, 0, 0, 0))),
            (1, Gen.Constant(new SizedStep(SizedStepKind.Reset, 0, 0, 0, 0))),
            (1, Gen.Constant(new SizedStep(SizedStepKind.Detach, 0, 0, 0, 0))),
            (1, Gen.Constant(new SizedStep(SizedStepKind.Compact, 0, 0, 0, 0))),
            (1, Gen.Constant(new SizedStep(SizedStepKind.Rebase, 0, 0, 0, 0))));
        using var realTools = new RealToolsTally(output);
        var scripts = from count in Gen.Choose(1, 16) from s in Gen.ArrayOf(steps, count) select s;
        var arbitrary = Arb.From(scripts, ScriptShrink.DropSteps);
        Prop.ForAll(arbitrary, s => Run(ext, qemuOptions, s, realTools)).Check(Config.QuickThrowOnFailure.WithMaxTest(25));
    }

    // qemu's options for the base and the children it makes, or one of these: a base qemu compressed whole, a fixed
    // base (neither is resized or compacted in place: a fixed VHD or VHDX refuses both); the children are ours.
    private const string Compressed = "compressed";
    private const string FixedBase = "fixed";

    private static void Run(string ext, string? qemuOptions, SizedStep[] script, RealToolsTally realTools)
    {
        using var dir = new TempDirectory("mixed-size-model");
        // views[k]: what layer k's chain shows, frozen once it has a child (parents are immutable); the last is the top's.
        var views = new List<byte[]> { new byte[BaseSize] };
        var paths = new List<string> { dir.File("l0" + ext) };
        if (qemuOptions == Compressed)
        {
            string raw = Qcow2TestKit.MakeRaw(dir.File("content.raw"), BaseSize, 19);
            File.ReadAllBytes(raw).CopyTo(views[0], 0);
            Qcow2TestKit.QemuImg("convert", "-c", "-f", "raw", "-O", "qcow2", "-o", "cluster_size=16k", raw, paths[0]);
            File.Delete(raw);
        }
        else if (qemuOptions == FixedBase) DiskImage.Create(paths[0], new ImageCreateOptions(BaseSize, ImageType.Fixed)).Dispose();
        else if (qemuOptions is not null) Qcow2TestKit.QemuImg("create", "-f", "qcow2", "-o", qemuOptions, paths[0], BaseSize.ToString());
        else OpsKit.CreateBase(paths[0], BaseSize, ext == ".vhdx" ? 1 << 20 : null);
        int made = 1;
        foreach (var step in script)
        {
            string top = paths[^1];
            var model = views[^1];
            switch (step.Kind)
            {
                case SizedStepKind.Write or SizedStepKind.Zero:
                    long off = step.Offset % model.Length;
                    int len = (int)Math.Min(step.Length, model.Length - off);
                    using (var chain = DiskImage.Open(top, OpenOptions.ReadWrite))
                    {
                        if (step.Kind == SizedStepKind.Zero)
                        {
                            chain.WriteZeroes(off, len);
                            Array.Clear(model, (int)off, len);
                        }
                        else
                        {
                            var data = RandomData.Bytes(len, step.Seed);
                            if (step.Seed % 5 == 0) Array.Clear(data);
                            chain.Write(off, data);
                            data.CopyTo(model, off);
                        }
                    }
                    break;
                case SizedStepKind.Child when paths.Count < 5 && ext != ".img": // a raw image has no children
                    string child = dir.File($"l{made++}" + ext);
                    if (qemuOptions is null or Compressed or FixedBase) OpsKit.CreateChild(child, top);
                    else Qcow2TestKit.QemuImg("create", "-f", "qcow2", "-o", qemuOptions, "-b", Path.GetFileName(top), "-F", "qcow2", child);
                    paths.Add(child);
                    views.Add((byte[])model.Clone());
                    break;
                case SizedStepKind.Resize or SizedStepKind.Compact when qemuOptions == FixedBase && Path.GetFileName(top) == "l0" + ext:
                    if (step.Size != model.Length) AssertFixedRefuses(top, step, model.Length);
                    break;
                case SizedStepKind.Resize:
                    views[^1] = Resized(top, ext, model, step.Size, paths.Count > 1 ? views[^2].Length : 0);
                    break;
                case SizedStepKind.Merge when paths.Count > 1:
                    var parent = views[^2];
                    var merged = model.Length >= parent.Length ? model : [.. model, .. parent.AsSpan(model.Length)];
                    if (qemuOptions == FixedBase && paths.Count == 2 && Path.GetFileName(paths[0]) == "l0" + ext && model.Length > parent.Length)
                    {
                        // A fixed VHD or VHDX cannot grow to hold a larger top: refused, both files unchanged.
                        var before = paths.Select(File.ReadAllBytes).ToList();
                        var e = Assert.Throws<DiskImageException>(() => Merge.CommitAsync(top).GetAwaiter().GetResult());
                        Assert.Equal(ErrorKind.Unsupported, e.Kind);
                        Assert.Equal(before, paths.Select(File.ReadAllBytes).ToList());
                        break;
                    }
                    Merge.CommitAsync(top).GetAwaiter().GetResult();
                    Assert.False(File.Exists(top));
                    paths.RemoveAt(paths.Count - 1);
                    views.RemoveAt(views.Count - 1);
                    views[^1] = merged;
                    break;
                case SizedStepKind.Pull when paths.Count > 2:
                    Merge.PullAsync(top).GetAwaiter().GetResult();
                    // The pulled parent is no one's parent now; gone, it does not block a later merge into the grandparent.
                    File.Delete(paths[^2]);
                    paths.RemoveAt(paths.Count - 2);
                    views.RemoveAt(views.Count - 2);
                    break;
                case SizedStepKind.Reset when paths.Count > 1:
                    // The top reads as its parent again, at its own size (zeros past the parent's end).
                    Reset.Run(top);
                    var reset = new byte[model.Length];
                    views[^2].AsSpan(0, Math.Min(model.Length, views[^2].Length)).CopyTo(reset);
                    views[^1] = reset;
                    break;
                case SizedStepKind.Detach when paths.Count > 1:
                    try
                    {
                        Detach.RunAsync(top).GetAwaiter().GetResult();
                    }
                    catch (DiskImageException e) when (e.Kind == ErrorKind.Unsupported && ext is ".qcow2" or ".vhd")
                    {
                        break; // only VHDX and VDI detach in place
                    }
                    // The top stands alone now: its old parents are no one's parents.
                    paths.RemoveRange(0, paths.Count - 1);
                    views.RemoveRange(0, views.Count - 1);
                    break;
                case SizedStepKind.Compact when ext == ".img":
                    var raw = File.ReadAllBytes(top);
                    Assert.Equal(ErrorKind.Unsupported, Assert.Throws<DiskImageException>(() => Compact.RunAsync(top).GetAwaiter().GetResult()).Kind);
                    Assert.Equal(raw, File.ReadAllBytes(top));
                    break;
                case SizedStepKind.Compact:
                    Compact.RunAsync(top).GetAwaiter().GetResult();
                    break;
                case SizedStepKind.Rebase when paths.Count > 2:
                    // Onto the grandparent, content kept: the parent leaves the chain (its file stays, unchanged).
                    try
                    {
                        Rebase.RunAsync(top, paths[^3]).GetAwaiter().GetResult();
                    }
                    catch (DiskImageException e) when (e.Kind == ErrorKind.ChainInvalid && views[^3].Length != model.Length)
                    {
                        break; // a rebase onto a parent of another size is refused
                    }
                    // The old parent is now a sibling nothing reads through; gone, it does not block a merge. The rebase
                    // sealed the new parent as a linked clone's; lifted, as OpsKit.CreateChild leaves parents (VHD has no seal).
                    File.Delete(paths[^2]);
                    if (ext != ".vhd") DiskImage.Unseal(paths[^3]);
                    paths.RemoveAt(paths.Count - 2);
                    views.RemoveAt(views.Count - 2);
                    break;
            }
            AssertReads(paths[^1], views[^1], $"after {step} in [{string.Join(", ", script.Select(s => s.ToString()))}]");
        }
        using (var chain = DiskImage.Open(paths[^1]))
        {
            var report = chain.Check();
            Assert.False(report.HasErrors, string.Join("; ", report.Problems));
        }
        RealTools.AssertReadsModel(paths[^1], views[^1], $"{ext} [{string.Join(", ", script.Select(s => s.ToString()))}]", realTools);
    }

    // A fixed base is neither compacted nor resized (a shrink over its data may be refused for that first), unchanged.
    private static void AssertFixedRefuses(string top, SizedStep step, long size)
    {
        var unchanged = File.ReadAllBytes(top);
        var refused = Assert.Throws<DiskImageException>(() => (step.Kind == SizedStepKind.Compact
            ? Compact.RunAsync(top) : (Task)Resize.RunAsync(top, step.Size, shrink: true)).GetAwaiter().GetResult());
        Assert.True(refused.Kind == ErrorKind.Unsupported || (refused.Kind == ErrorKind.InvalidArgument && step.Size < size), $"{step}: {refused.Message}");
        Assert.Equal(unchanged, File.ReadAllBytes(top));
    }

    // Resizes the top and returns its new model; checks that a refusal is one the model allows.
    private static byte[] Resized(string top, string ext, byte[] model, long newSize, long parentSize)
    {
        bool shrink = newSize < model.Length;
        try
        {
            Resize.RunAsync(top, newSize, shrink).GetAwaiter().GetResult();
        }
        catch (DiskImageException e) when (e.Kind == ErrorKind.InvalidArgument)
        {
            if (shrink) Assert.Contains("beyond the new end", e.Message);
            // Growth is refused only over a parent larger than the top, whose data would show.
            else Assert.True(parentSize > model.Length, $"growth from {model.Length} to {newSize} refused over a parent of {parentSize}: {e.Message}");
            AssertReads(top, model, "after a refused resize");
            return model;
        }
        catch (DiskImageException e) when (e.Kind == ErrorKind.Unsupported && parentSize > 0 && ext is ".vdi" or ".vhd")
        {
            // A differencing VDI or VHD keeps its parent's size (only VHDX and qcow2 children resize).
            AssertReads(top, model, "after a refused resize of a child");
            return model;
        }
        if (shrink)
            Assert.True(model.AsSpan((int)newSize).IndexOfAnyExcept((byte)0) < 0, $"a shrink to {newSize} cut non-zero data");
        var resized = new byte[newSize];
        model.AsSpan(0, (int)Math.Min(newSize, model.Length)).CopyTo(resized);
        return resized;
    }

    private static void AssertReads(string path, byte[] model, string when)
    {
        using var chain = DiskImage.Open(path);
        Assert.True(chain.VirtualSize == model.Length, $"{when}: size {chain.VirtualSize}, model {model.Length}");
        Infrastructure.ChainModel.AssertSame(chain, model, when);
    }
}
