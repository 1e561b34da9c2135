using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Tests.Infrastructure;
using FsCheck;
using FsCheck.Fluent;
using Xunit.Abstractions;

namespace DiskSnapshotEngine.Tests.Nbd;

/// <summary>The server in-process against the test client: what it reads, maps and writes, checked against the chain and a flat model.</summary>
public class NbdServerTests(ITestOutputHelper output)
{
    private const int Block = 1 << 20;
    private const long Size = 48L << 20;

    [Theory]
    [InlineData("vhdx", true)]
    [InlineData("vhdx", false)]
    [InlineData("vdi", true)]
    public void Reads_of_any_size_and_alignment_equal_the_chain(string format, bool structured)
    {
        using var dir = new TempDirectory("nbd");
        var paths = NbdTestImages.Chain(dir.Path, format, 3, Size, Block, seed: 5);
        using var served = new ServedImage(paths[^1], dir.File("s.sock"), writable: false);
        var expected = NbdTestImages.ReadAll(served.Chain);
        using var client = served.Connect().Negotiate(structured, metaContext: false);
        Assert.Equal(Size, client.Size);

        var rng = new Random(1);
        int holes = 0;
        for (int i = 0; i < 60; i++)
        {
            int length = i switch { 0 => 32 << 20, 1 => 1, _ => rng.Next(1, i % 3 == 0 ? 9 << 20 : 70_000) };
            long offset = i == 0 ? 0 : rng.NextInt64(0, Size - length + 1);
            var (error, data, h) = client.Read(offset, length, handle: (ulong)i);
            Assert.Equal(0u, error);
            Assert.True(data.AsSpan().SequenceEqual(expected.AsSpan((int)offset, length)), $"read {i} at {offset}, +{length} differs");
            holes += h;
        }
        // The whole-disk read crossed absent and ZERO ranges: structured replies must have sent them as holes.
        Assert.Equal(structured, holes > 0);
    }

    [Fact]
    public void Block_status_follows_the_chain_map_and_req_one_gives_one_extent()
    {
        using var dir = new TempDirectory("nbd");
        var paths = NbdTestImages.Chain(dir.Path, "vhdx", 3, Size, Block, seed: 9);
        using var served = new ServedImage(paths[^1], dir.File("s.sock"), writable: false);
        using var client = served.Connect().Negotiate();

        // The map as data / not data, neighbours of one kind merged.
        var expected = new List<(long Offset, long Length, bool Data)>();
        foreach (var e in served.Chain.GetExtents(0, Size))
        {
            bool data = e.Kind == ExtentKind.Data;
            if (expected.Count > 0 && expected[^1].Data == data) expected[^1] = expected[^1] with { Length = expected[^1].Length + e.Length };
            else expected.Add((e.Offset, e.Length, data));
        }
        var actual = new List<(long Offset, long Length, bool Data)>();
        for (long at = 0; at < Size;)
        {
            var d = client.BlockStatus(at, (uint)Math.Min(Size - at, 7 << 20));
            Assert.NotEmpty(d);
            foreach (var (length, flags) in d)
            {
                Assert.True(flags is 0 or 3, $"flags {flags}");
                bool data = flags == 0;
                if (actual.Count > 0 && actual[^1].Data == data) actual[^1] = actual[^1] with { Length = actual[^1].Length + length };
                else actual.Add((at, length, data));
                at += length;
            }
        }
        Assert.Equal(expected, actual);
        Assert.Contains(expected, e => !e.Data);

        var one = client.BlockStatus(0, 5000, flags: 8);
        Assert.Single(one);
        Assert.True(one[0].Length <= 5000);
    }

    /// <param name="Kind">0 write, 1 write zeroes, 2 write zeroes NO_HOLE, 3 trim, 4 flush; FUA on odd seeds.</param>
    public sealed record Op(int Kind, int Offset, int Length, int Seed);

    [RequiresToolTheory("qemu-img")]
    [InlineData("vhdx")]
    [InlineData("vdi")]
    [InlineData("vhd")]
    [InlineData("qcow2")]
    [InlineData("img")]
    public void Random_writes_zeroes_and_trims_over_nbd_equal_a_flat_model_and_leave_the_parents_untouched(string format)
    {
        var op = from kind in Gen.Frequency((6, Gen.Constant(0)), (2, Gen.Constant(1)), (1, Gen.Constant(2)), (2, Gen.Constant(3)), (1, Gen.Constant(4)))
                 from offset in Gen.Choose(0, (int)Size - 1)
                 from length in Gen.OneOf(Gen.Choose(1, 5000), Gen.Choose(1, 3 * Block), Gen.Choose(1, 9 << 20))
                 from seed in Gen.Choose(0, int.MaxValue - 1)
                 select new Op(kind, offset, (int)Math.Min(length, Size - offset), seed);
        using var realTools = new RealToolsTally(output);
        Prop.ForAll(Arb.From(Gen.Choose(1, 20).SelectMany(n => Gen.ArrayOf(op, n))), ops => Run(ops))
            .Check(Config.QuickThrowOnFailure.WithMaxTest(format == "vhdx" ? 12 : 6));

        bool Run(Op[] ops)
        {
            using var dir = new TempDirectory("nbd-model");
            // A raw image has no children: it is served alone (and "the parents" are none).
            var paths = NbdTestImages.Chain(dir.Path, format, format == "img" ? 1 : 2, Size, Block, seed: 3);
            var parentHash = ContentHash.OfFile(paths[0]);
            byte[] model;
            using (var c = DiskImage.Open(paths[^1])) model = NbdTestImages.ReadAll(c);
            var known = new bool[Size]; // trimmed bytes are unspecified until written again
            Array.Fill(known, true);
            using (var served = new ServedImage(paths[^1], dir.File("s.sock"), writable: true))
            using (var client = served.Connect().Negotiate())
            {
                foreach (var o in ops)
                {
                    ushort fua = (ushort)(o.Seed % 2);
                    var (error, message) = o.Kind switch
                    {
                        0 => client.Write(o.Offset, RandomData.Bytes(o.Length, o.Seed), fua),
                        1 => client.Command(6, o.Offset, (uint)o.Length, fua),
                        2 => client.Command(6, o.Offset, (uint)o.Length, (ushort)(fua | 2)),
                        3 => client.Command(4, o.Offset, (uint)o.Length, fua),
                        _ => client.Command(3, 0, 0),
                    };
                    Assert.True(error == 0, $"{o}: error {error} {message}");
                    if (o.Kind == 0) RandomData.Bytes(o.Length, o.Seed).CopyTo(model, o.Offset);
                    if (o.Kind is 1 or 2) Array.Clear(model, o.Offset, o.Length);
                    if (o.Kind <= 3) Array.Fill(known, o.Kind != 3, o.Offset, o.Length);
                }
                var all = new byte[Size];
                for (int at = 0; at < Size; at += 16 << 20)
                {
                    var (e, piece, _) = client.Read(at, 16 << 20);
                    Assert.Equal(0u, e);
                    piece.CopyTo(all, at);
                }
                AssertKnownEqual(model, all, known, "over NBD");
                client.Disconnect();
            }
            byte[] content;
            using (var reopened = DiskImage.Open(paths[^1]))
            {
                content = NbdTestImages.ReadAll(reopened);
                AssertKnownEqual(model, content, known, "after reopening");
                var report = reopened.Check();
                Assert.False(report.HasErrors, string.Join("; ", report.Problems));
            }
            // Trimmed bytes the model does not know are taken as we read them: the real tools must read the same.
            RealTools.AssertReadsModel(paths[^1], content, $"{format} [{string.Join(", ", ops.AsEnumerable())}]", realTools);
            if (paths.Count > 1) Assert.Equal(parentHash, ContentHash.OfFile(paths[0]));
            return true;
        }
    }

    private static void AssertKnownEqual(byte[] model, byte[] actual, bool[] known, string when)
    {
        Assert.Equal(model.Length, actual.Length);
        for (int i = 0; i < model.Length; i++)
            if (known[i] && model[i] != actual[i])
                Assert.Fail($"{when}: byte {i} is {actual[i]}, the model has {model[i]}");
    }

    [Fact]
    public async Task Readers_on_several_connections_and_a_writer_see_consistent_data()
    {
        using var dir = new TempDirectory("nbd");
        var paths = NbdTestImages.Chain(dir.Path, "vhdx", 2, Size, Block, seed: 4);
        using var served = new ServedImage(paths[^1], dir.File("s.sock"), writable: true);
        var before = NbdTestImages.ReadAll(served.Chain);
        // The writer owns [0, 16 MiB); readers read the rest, which must never change, while writes run.
        var readers = Enumerable.Range(0, 3).Select(k => Task.Run(() =>
        {
            using var c = served.Connect().Negotiate();
            var rng = new Random(k);
            for (int i = 0; i < 40; i++)
            {
                int length = rng.Next(1, 2 << 20);
                long offset = rng.NextInt64(16 << 20, Size - length);
                var (e, data, _) = c.Read(offset, length);
                Assert.Equal(0u, e);
                Assert.True(data.AsSpan().SequenceEqual(before.AsSpan((int)offset, length)));
            }
        })).ToArray();
        using (var w = served.Connect().Negotiate())
        {
            for (int i = 0; i < 30; i++)
                Assert.Equal(0u, w.Write(i * 500_000L, RandomData.Bytes(300_000, i)).Error);
        }
        await Task.WhenAll(readers);
    }

    [Fact]
    public async Task A_stop_lets_the_request_in_flight_finish_then_closes_every_connection()
    {
        using var dir = new TempDirectory("nbd");
        var paths = NbdTestImages.Chain(dir.Path, "vhdx", 2, Size, Block, seed: 7);
        var data = RandomData.Bytes(3 << 20, 17);
        using (var served = new ServedImage(paths[^1], dir.File("s.sock"), writable: true))
        {
            using var idle = served.Connect().Negotiate();
            using var writer = served.Connect().Negotiate();
            // The write's header and a first part of its payload: the server is in the middle of the request.
            writer.SendRequest(1, 42, 5 << 20, (uint)data.Length);
            writer.Send(data[..(1 << 20)]);
            await Task.Delay(300);
            var stopping = Task.Run(served.Stop);
            await Task.Delay(300);
            Assert.False(stopping.IsCompleted, "the stop did not wait for the request in flight");
            writer.Send(data[(1 << 20)..]);
            Assert.Equal((0u, (string?)null), writer.ReadStatus(42));
            Assert.True(writer.ServerClosed());
            Assert.True(idle.ServerClosed());
            await stopping.WaitAsync(TimeSpan.FromSeconds(30));
        }
        using var chain = DiskImage.Open(paths[^1]);
        var back = new byte[data.Length];
        chain.Read(5 << 20, back);
        Assert.Equal(data, back);
    }
}
