using DiskSnapshotEngine.Tests.Cli;
using DiskSnapshotEngine.Tests.Infrastructure;
using FsCheck;
using FsCheck.Fluent;
using Xunit.Abstractions;

namespace DiskSnapshotEngine.Tests.Nbd;

/// <summary>
/// <c>dse write</c> and <c>dse serve</c> as the processes a user runs, against a flat model, over a chain of each
/// format: random writes through <c>dse write --offset N --input FILE</c> (some fed on stdin), then a
/// <c>dse serve</c> session in which qemu-io writes and zeroes over NBD and nbdcopy reads the whole disk back before
/// SIGTERM, then more <c>dse write</c>s.
/// Every process must exit 0; the chain then reads as the model, passes dse's check, the real tools agree
/// (<see cref="RealTools"/>) and the parent is unchanged. The in-process paths have their own models
/// (<see cref="NbdServerTests"/>, <see cref="ChainModel"/>): this one covers argument parsing, the streamed input,
/// the flush on SIGTERM and the locks of the real processes. One random script per format and run: each costs four
/// to six process starts, and the cases differ from run to run.
/// </summary>
public sealed class WriteServeProcessModelTests(ITestOutputHelper output)
{
    private const int Block = 1 << 20;
    private const long Size = 12L << 20;

    /// <summary>One <c>dse write</c>; <paramref name="Seed"/> % 3 == 0 feeds the data on stdin.</summary>
    public sealed record CliWrite(long Offset, int Length, int Seed)
    {
        public override string ToString() => $"write({Offset}, +{Length}, {Seed})";
    }

    /// <summary>One qemu-io command over NBD: data of <paramref name="Pattern"/>, or zeroes when it is 0.</summary>
    public sealed record NbdOp(long Offset, int Length, int Pattern)
    {
        public string QemuIo => Pattern == 0 ? $"write -z {Offset} {Length}" : $"write -P {Pattern} {Offset} {Length}";
        public override string ToString() => QemuIo;
    }

    /// <summary>dse writes, one serve session, dse writes again.</summary>
    public sealed record Script(CliWrite[] Before, NbdOp[] Served, CliWrite[] After)
    {
        public override string ToString() =>
            $"[{string.Join(", ", Before.AsEnumerable())}] serve [{string.Join("; ", Served.AsEnumerable())}] [{string.Join(", ", After.AsEnumerable())}]";
    }

    [RequiresToolTheory("qemu-img", "qemu-io", "nbdcopy")]
    [InlineData("vhdx")]
    [InlineData("vdi")]
    [InlineData("vhd")]
    [InlineData("qcow2")]
    [InlineData("img")]
    public void Dse_write_and_dse_serve_processes_write_what_the_model_says(string format)
    {
        var write = from offset in Gen.Choose(0, (int)Size - 1)
                    from length in Gen.OneOf(Gen.Choose(1, 5000), Gen.Choose(1, 3 * Block))
                    from seed in Gen.Choose(1, int.MaxValue - 1)
                    select new CliWrite(offset, (int)Math.Min(length, Size - offset), seed);
        var op = from offset in Gen.Choose(0, (int)Size - 1)
                 from length in Gen.OneOf(Gen.Choose(1, 5000), Gen.Choose(1, 2 * Block))
                 from pattern in Gen.Frequency((1, Gen.Constant(0)), (3, Gen.Choose(1, 255)))
                 select new NbdOp(offset, (int)Math.Min(length, Size - offset), pattern);
        var scripts = from before in Gen.Choose(1, 2).SelectMany(n => Gen.ArrayOf(write, n))
                      from served in Gen.Choose(1, 5).SelectMany(n => Gen.ArrayOf(op, n))
                      from after in Gen.Choose(1, 2).SelectMany(n => Gen.ArrayOf(write, n))
                      select new Script(before, served, after);
        using var realTools = new RealToolsTally(output);
        Prop.ForAll(Arb.From(scripts), s => Run(format, s, realTools)).Check(Config.QuickThrowOnFailure.WithMaxTest(1));
    }

    private static void Run(string format, Script script, RealToolsTally realTools)
    {
        using var dir = new TempDirectory("write-serve-model");
        // A raw image has no children: it is written alone.
        var paths = NbdTestImages.Chain(dir.Path, format, format == "img" ? 1 : 2, Size, Block, seed: 11);
        string top = paths[^1];
        var parentHash = ContentHash.OfFile(paths[0]);
        byte[] model;
        using (var chain = DiskImage.Open(top)) model = NbdTestImages.ReadAll(chain);

        foreach (var w in script.Before) DseWrite(dir, top, w, model);
        Serve(dir, top, script.Served, model, $"{script}");
        foreach (var w in script.After) DseWrite(dir, top, w, model);

        using (var reopened = DiskImage.Open(top))
        {
            ChainModel.AssertSame(reopened, model, $"{format} {script}");
            var report = reopened.Check();
            Assert.False(report.HasErrors, string.Join("; ", report.Problems));
        }
        RealTools.AssertReadsModel(top, model, $"{format} {script}", realTools);
        if (paths.Count > 1) Assert.Equal(parentHash, ContentHash.OfFile(paths[0]));
    }

    private static void DseWrite(TempDirectory dir, string top, CliWrite w, byte[] model)
    {
        var data = RandomData.Bytes(w.Length, w.Seed);
        bool stdin = w.Seed % 3 == 0;
        string input = dir.File("input.bin");
        if (!stdin) File.WriteAllBytes(input, data);
        var result = CliRunner.RunProcessAsync(stdin ? data : null, "write", top, "--offset", w.Offset.ToString(), "--input", stdin ? "-" : input)
            .GetAwaiter().GetResult();
        Assert.True(result.ExitCode == 0, $"{w}: dse write exited {result.ExitCode}: {result.StdErr}");
        data.CopyTo(model, w.Offset);
    }

    private static void Serve(TempDirectory dir, string top, NbdOp[] ops, byte[] model, string when)
    {
        string socket = dir.File("disk.sock");
        using var serve = new ServeProcess(top, "--socket", socket);
        Assert.EndsWith($"read-write) at nbd+unix:///?socket={socket}", serve.FirstLine);
        var args = new List<string> { "-f", "raw" };
        foreach (var o in ops) { args.Add("-c"); args.Add(o.QemuIo); }
        args.Add($"nbd+unix:///?socket={socket}");
        string said = ExternalTool.RunChecked("qemu-io", args.ToArray());
        // qemu-io reports a failed command on stdout and still exits 0.
        Assert.DoesNotContain("failed", said);
        foreach (var o in ops)
            if (o.Pattern == 0) Array.Clear(model, (int)o.Offset, o.Length);
            else model.AsSpan((int)o.Offset, o.Length).Fill((byte)o.Pattern);
        // Before the stop, the served disk as another NBD client (nbdcopy) reads it.
        string copy = dir.File("served.raw");
        ExternalTool.RunChecked("nbdcopy", $"nbd+unix:///?socket={socket}", copy);
        long same = Operations.OpsKit.FirstDifference(model, File.ReadAllBytes(copy));
        Assert.True(same < 0, $"{when}: nbdcopy reads the served disk differently from the model at byte {same}");
        File.Delete(copy);
        serve.Signal("TERM");
        var (code, stderr) = serve.WaitAsync().GetAwaiter().GetResult();
        Assert.True(code == 0, $"{when}: dse serve exited {code}: {stderr}");
        Assert.Contains("stopped serving; the image is flushed", stderr);
        Assert.False(File.Exists(socket), $"{when}: the socket is left behind");
    }
}
