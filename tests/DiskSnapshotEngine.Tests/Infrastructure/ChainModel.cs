using DiskSnapshotEngine.Block;
using FsCheck;
using FsCheck.Fluent;
using Xunit.Abstractions;

namespace DiskSnapshotEngine.Tests.Infrastructure;

public enum ChainStepKind { Write, Zero, Child, Reopen }

/// <summary>One step of a chain script. Every step carries its own seed, so it does the same whatever runs before it.</summary>
/// <param name="Seed">Write: the seed of the data (a multiple of 5 writes zeros as data); Child: which kind of child the format makes.</param>
public sealed record ChainStep(ChainStepKind Kind, long Offset, int Length, int Seed)
{
    public override string ToString() => Kind switch
    {
        ChainStepKind.Write => $"Write({Offset}, +{Length}, seed {Seed})",
        ChainStepKind.Zero => $"Zero({Offset}, +{Length})",
        ChainStepKind.Child => $"Child({Seed})",
        _ => "Reopen",
    };
}

/// <summary>A base image (one of the format's variants) and the steps run over it.</summary>
public sealed record ChainScript(int BaseVariant, ChainStep[] Steps)
{
    public override string ToString() => $"base variant {BaseVariant}: {string.Join(", ", Steps.Select(s => s.ToString()))}";
}

/// <summary>What a format's model test supplies to <see cref="ChainModel"/>: the disk's shape and how to build its layers.</summary>
public abstract class ChainModelFormat
{
    /// <summary>Virtual size of the disk (keep it off block boundaries, so the last block is short).</summary>
    public abstract long Size { get; }

    /// <summary>A block or cluster: some writes are exactly this long.</summary>
    public abstract int Unit { get; }

    /// <summary>The longest data write and the longest zeroing.</summary>
    public abstract int MaxWrite { get; }
    public abstract int MaxZero { get; }

    public virtual int MaxLayers => 8;
    public virtual int MaxSteps => 24;

    /// <summary>How many kinds of base image the format makes (block sizes, sector sizes, other formats...).</summary>
    public virtual int BaseVariants => 1;

    /// <summary>True when the base of that variant is a parent only: a child is put over it before the first write.</summary>
    public virtual bool BaseIsReadOnly(int variant) => false;

    /// <summary>Creates the base image; when it is made with content, copies that content into <paramref name="model"/>.</summary>
    public abstract string CreateBase(TempDirectory dir, int variant, byte[] model);

    /// <summary>Creates the child number <paramref name="index"/> of <paramref name="parent"/>; <paramref name="seed"/> picks its kind.</summary>
    public abstract string CreateChild(TempDirectory dir, string parent, int index, int variant, int seed);

    /// <summary>The format's own checks of the finished chain, reopened read-only.</summary>
    public abstract void CheckReopened(DiskChain chain);
}

/// <summary>
/// The model test every format shares: random unaligned writes (some of zeros as data), zeroing, new children and
/// close/reopen over a chain read back exactly like a flat in-memory disk, before and after reopening, the map never
/// calls data zero, and the real tools agree (<see cref="RealTools"/>: qemu-img check and compare, vhdimount). FsCheck shrinks a failing script by dropping steps.
/// </summary>
public static class ChainModel
{
    /// <summary>Runs <paramref name="maxTests"/> random scripts; throws with the shrunk script on the first failure; writes what the real tools checked to <paramref name="output"/>.</summary>
    public static void Check(ChainModelFormat format, int maxTests, ITestOutputHelper output)
    {
        using var realTools = new RealToolsTally(output);
        var scripts =
            from variant in Gen.Choose(0, format.BaseVariants - 1)
            from count in Gen.Choose(1, format.MaxSteps)
            from steps in Gen.ArrayOf(Steps(format), count)
            select new ChainScript(variant, steps);
        var arbitrary = Arb.From(scripts, s => ScriptShrink.DropSteps(s.Steps).Select(shorter => s with { Steps = shorter }));
        Prop.ForAll(arbitrary, s => Run(format, s, realTools)).Check(Config.QuickThrowOnFailure.WithMaxTest(maxTests));
    }

    private static Gen<ChainStep> Steps(ChainModelFormat f) =>
        Gen.Frequency(
            (6, from offset in Gen.Choose(0, (int)f.Size - 1)
                from length in Gen.Frequency((3, Gen.Choose(1, 5000)), (2, Gen.Choose(1, f.MaxWrite)), (1, Gen.Constant(f.Unit)))
                from seed in Gen.Choose(1, int.MaxValue - 1)
                select new ChainStep(ChainStepKind.Write, offset, length, seed)),
            (1, from offset in Gen.Choose(0, (int)f.Size - 1)
                from length in Gen.Choose(1, f.MaxZero)
                select new ChainStep(ChainStepKind.Zero, offset, length, 0)),
            (2, from seed in Gen.Choose(0, 1023) select new ChainStep(ChainStepKind.Child, 0, 0, seed)),
            (1, Gen.Constant(new ChainStep(ChainStepKind.Reopen, 0, 0, 0))));

    /// <summary>Runs one script against the flat model.</summary>
    public static void Run(ChainModelFormat format, ChainScript script, RealToolsTally realTools)
    {
        using var dir = new TempDirectory("chain-model");
        var model = new byte[format.Size];
        int variant = script.BaseVariant;
        string top = format.CreateBase(dir, variant, model);
        int layers = 1;
        if (format.BaseIsReadOnly(variant)) top = format.CreateChild(dir, top, layers++, variant, seed: 0);
        var chain = DiskImage.Open(top, OpenOptions.ReadWrite);
        try
        {
            foreach (var step in script.Steps)
            {
                int length = (int)Math.Min(step.Length, format.Size - step.Offset);
                switch (step.Kind)
                {
                    case ChainStepKind.Write:
                        var data = RandomData.Bytes(length, step.Seed);
                        if (step.Seed % 5 == 0) Array.Clear(data);
                        chain.Write(step.Offset, data);
                        data.CopyTo(model, step.Offset);
                        break;
                    case ChainStepKind.Zero:
                        chain.WriteZeroes(step.Offset, length);
                        Array.Clear(model, (int)step.Offset, length);
                        break;
                    case ChainStepKind.Child when layers < format.MaxLayers:
                        chain.Dispose();
                        top = format.CreateChild(dir, top, layers++, variant, step.Seed);
                        chain = DiskImage.Open(top, OpenOptions.ReadWrite);
                        Assert.Equal(layers, chain.Layers.Count);
                        break;
                    case ChainStepKind.Reopen:
                        chain.Dispose();
                        chain = DiskImage.Open(top, OpenOptions.ReadWrite);
                        AssertSame(chain, model, "after a reopen");
                        break;
                }
            }
            AssertSame(chain, model, "before closing");
        }
        finally
        {
            chain.Dispose();
        }
        using (var reopened = DiskImage.Open(top))
        {
            AssertSame(reopened, model, "after reopening");
            format.CheckReopened(reopened);
        }
        RealTools.AssertReadsModel(top, model, $"{script}", realTools);
    }

    /// <summary>The chain reads the model byte for byte; its extents tile the disk and what they call zero is zero.</summary>
    public static void AssertSame(DiskChain chain, byte[] model, string when)
    {
        var actual = new byte[model.Length];
        chain.Read(0, actual);
        int same = actual.AsSpan().CommonPrefixLength(model);
        Assert.True(same == model.Length, $"{when}: first difference at byte {same} in a chain of {chain.Layers.Count}");
        long covered = 0;
        foreach (var e in chain.GetExtents(0, model.Length))
        {
            Assert.Equal(covered, e.Offset);
            covered = e.End;
            if (e.Kind != ExtentKind.Data)
                Assert.True(model.AsSpan((int)e.Offset, (int)e.Length).IndexOfAnyExcept((byte)0) < 0, $"{when}: extent {e} is not zero in the model");
        }
        Assert.Equal(model.Length, covered);
    }
}
