using System.Buffers;
using System.Buffers.Binary;
using System.Net.Sockets;
using DiskSnapshotEngine.Nbd;
using DiskSnapshotEngine.Tests.Infrastructure;
using FsCheck;
using FsCheck.Fluent;
using Xunit.Abstractions;

namespace DiskSnapshotEngine.Tests.Nbd;

/// <summary>
/// Mutation fuzzer of the NBD server, in the pattern of the image fuzzer (Reliability/MutationFuzzTests): valid client
/// sessions (<see cref="NbdTranscript.Seeds"/>) get FsCheck-generated edits aimed at their fields (magics, option and
/// request types, lengths, counts, flags, offsets), truncations and insertions. Each case runs twice:
/// through the pure parsers and rules (<see cref="NbdOptionRequest.Parse"/>, <see cref="NbdNegotiation"/>,
/// <see cref="NbdRequest.TryParse"/>, <see cref="NbdRequestRules.Check"/>), whose every answer is checked against the
/// protocol (well-formed option replies, only in-range requests let through); and as raw bytes on a real socket to a
/// running server, which must end the session promptly, never fault, keep serving, and keep its image consistent.
/// `tests/fuzz.sh --minutes N` runs it longer (DSE_FUZZ_SECONDS, DSE_FUZZ_SEED, DSE_FUZZ_FAILURES, like the image fuzzer).
/// </summary>
public class NbdMutationFuzzTests
{
    private const long Size = 8L << 20;
    private const long AllocationBound = 256L << 20;
    private static readonly TimeSpan CaseTimeout = TimeSpan.FromSeconds(20);
    private readonly ITestOutputHelper _output;

    public NbdMutationFuzzTests(ITestOutputHelper output) => _output = output;

    /// <param name="Field">Which field (index into the transcript's fields, modulo their count).</param>
    /// <param name="Kind">0 flip a bit, 1 set a byte, 2 big-endian u16, 3 u32, 4 u64 at the field, 5 truncate there, 6 insert bytes, 7 repeat the field.</param>
    public sealed record Edit(int Field, int Kind, ulong Value);

    private static Gen<Edit> EditGen =>
        from target in Gen.Choose(0, 10_000)
        from kind in Gen.Frequency((3, Gen.Constant(0)), (2, Gen.Constant(1)), (2, Gen.Constant(2)), (4, Gen.Constant(3)), (2, Gen.Constant(4)),
            (1, Gen.Constant(5)), (1, Gen.Constant(6)), (1, Gen.Constant(7)))
        from value in Gen.Elements<ulong>(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x7F, 0xFF, 0x8000, 0xFFFF, 4095, 4096, 65536,
                (4 << 20) + 1, 32 << 20, (32 << 20) + 1, Size - 1, Size, Size + 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF,
                0x25609513, 0x49484156454F5054, ulong.MaxValue, long.MaxValue)
            .Or(Gen.Choose(0, int.MaxValue).Select(x => (ulong)x))
        select new Edit(target, kind, value);

    [Fact]
    public async Task Mutated_client_sessions_get_protocol_answers_only()
    {
        var fuzz = FuzzSettings.FromEnvironment(seconds: 20, maxCases: 2000);
        var (seconds, maxCases, seed, failureDir) = fuzz;

        using var dir = new TempDirectory("nbd-fuzz");
        var paths = NbdTestImages.Chain(dir.Path, "vhdx", 2, Size, 1 << 20, seed: 12);
        // A read-only server on a copy of the chain takes every other case; its files must not change.
        var roDir = Directory.CreateDirectory(dir.File("ro")).FullName;
        var roPaths = paths.Select(p => Path.Combine(roDir, Path.GetFileName(p))).ToList();
        for (int i = 0; i < paths.Count; i++) File.Copy(paths[i], roPaths[i]);
        var roHashes = roPaths.Select(ContentHash.OfFile).ToList();
        var seeds = NbdTranscript.Seeds(Size);
        var exports = new[] { new NbdExportInfo("", "fuzz", Size, ReadOnly: false, 4096), new NbdExportInfo("", "fuzz", Size, ReadOnly: true, 4096) };
        var failures = new List<string>();
        int cases = 0;
        var started = DateTime.UtcNow;
        var deadline = started.AddSeconds(seconds);
        _output.WriteLine($"seed {seed}");

        using (var served = new ServedImage(paths[^1], dir.File("s.sock"), writable: true, o => o with { HandshakeTimeout = TimeSpan.FromSeconds(5) }))
        using (var readOnly = new ServedImage(roPaths[^1], dir.File("r.sock"), writable: false, o => o with { HandshakeTimeout = TimeSpan.FromSeconds(5) }))
        {
            var edits = Gen.Choose(1, 5).SelectMany(n => EditGen.ListOf(n)).Select(l => l.ToArray());
            ulong batchSeed = seed;
            while (cases < maxCases && DateTime.UtcNow < deadline)
            {
                foreach (var caseEdits in edits.Sample(20, new Rnd(batchSeed++), 64))
                {
                    if (cases >= maxCases || DateTime.UtcNow >= deadline) break;
                    var transcript = seeds[cases % seeds.Count];
                    var bytes = Apply(transcript, caseEdits);
                    string? failure = Pure(bytes, exports[cases / 3 % 2]) ?? await OverSocket(cases / 3 % 2 == 0 ? served : readOnly, bytes);
                    if (failure is not null)
                    {
                        failure = $"case {cases} ({transcript.Name}, {string.Join(" ", caseEdits.Select(e => e.ToString()))}): {failure}";
                        failures.Add(failure);
                        Save(failureDir, bytes, cases, failure);
                    }
                    cases++;
                }
            }
            // After everything the fuzzer threw at it, the server still serves correct bytes.
            using var client = served.Connect().Negotiate();
            var expected = new byte[65536];
            served.Chain.Read(Size / 2, expected);
            Assert.Equal(expected, client.Read(Size / 2, 65536).Data);
        }
        if (!roHashes.SequenceEqual(roPaths.Select(ContentHash.OfFile)))
            failures.Add("the read-only server's image changed");
        using (var chain = DiskImage.Open(paths[^1]))
        {
            var report = chain.Check();
            if (report.HasErrors) failures.Add("the image has errors after the run: " + string.Join("; ", report.Problems));
        }

        string summary = $"{cases} NBD cases in {(DateTime.UtcNow - started).TotalSeconds:F0} s, {failures.Count} failures (seed {seed})";
        fuzz.Conclude(_output, summary, failures, cases, minCases: 200);
    }

    private static byte[] Apply(NbdTranscript t, Edit[] edits)
    {
        var bytes = new List<byte>(t.Bytes);
        var be = new byte[8];
        foreach (var e in edits)
        {
            var (offset, length) = t.Fields[e.Field % t.Fields.Count];
            if (offset >= bytes.Count) continue;
            BinaryPrimitives.WriteUInt64BigEndian(be, e.Value);
            switch (e.Kind)
            {
                case 0: bytes[offset + (int)(e.Value % (ulong)Math.Min(length, bytes.Count - offset))] ^= (byte)(1 << (int)(e.Value % 8)); break;
                case 1: bytes[offset] = (byte)e.Value; break;
                case 2 or 3 or 4:
                    int width = e.Kind == 2 ? 2 : e.Kind == 3 ? 4 : 8;
                    for (int i = 0; i < width && offset + i < bytes.Count; i++) bytes[offset + i] = be[8 - width + i];
                    break;
                case 5: bytes.RemoveRange(offset, bytes.Count - offset); break;
                case 6: bytes.InsertRange(offset, be[..(int)(1 + e.Value % 8)]); break;
                default: bytes.InsertRange(offset, bytes.GetRange(offset, Math.Min(length, bytes.Count - offset))); break;
            }
        }
        return bytes.ToArray();
    }

    /// <summary>
    /// Replays the client bytes through the pure protocol functions as the server's loop does, checking every answer.
    /// Returns a failure description, or null.
    /// </summary>
    private static string? Pure(byte[] bytes, NbdExportInfo export)
    {
        long before = GC.GetAllocatedBytesForCurrentThread();
        try
        {
            var negotiation = new NbdNegotiation(export);
            var output = new ArrayBufferWriter<byte>();
            var s = bytes.AsSpan();
            if (s.Length < 4 || !negotiation.AcceptClientFlags(BinaryPrimitives.ReadUInt32BigEndian(s))) return null;
            s = s[4..];
            bool transmission = false;
            for (int n = 0; n < NbdConnection.MaxOptions && !transmission; n++)
            {
                if (!NbdOptionRequest.TryParseHeader(s, out uint option, out uint length)) return null;
                s = s[NbdOptionRequest.HeaderSize..];
                if (length > NbdOptionRequest.MaxData || length > s.Length) return null;
                output.ResetWrittenCount();
                var step = negotiation.Handle(option, s[..(int)length], output);
                s = s[(int)length..];
                if (CheckOptionReplies(option, output.WrittenSpan, step) is { } bad) return bad;
                if (step == NbdNegotiationStep.Close) return null;
                transmission = step == NbdNegotiationStep.Transmission;
            }
            if (!transmission) return null;
            var session = negotiation.Session;
            while (NbdRequest.TryParse(s, out var r))
            {
                s = s[NbdRequest.Size..];
                if (r.Command == NbdCommand.Disconnect) return null;
                var error = NbdRequestRules.Check(r, session);
                if (error == NbdError.None && CheckAccepted(r, session) is { } bad) return bad;
                if (r.HasPayload) s = s[(int)Math.Min(r.Length, (uint)s.Length)..];
            }
            return null;
        }
        catch (Exception e)
        {
            return $"pure replay threw {e.GetType().Name}: {e.Message}";
        }
        finally
        {
            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            if (allocated > AllocationBound) throw new InvalidOperationException($"pure replay allocated {allocated >> 20} MiB");
        }
    }

    // A request the rules let through must be one the export can serve as asked.
    private static string? CheckAccepted(in NbdRequest r, in NbdSession s)
    {
        bool inside = r.Offset + r.Length <= (ulong)s.ExportSize && r.Offset <= (ulong)s.ExportSize;
        return r.Command switch
        {
            NbdCommand.Read or NbdCommand.Write when r.Length > NbdRequestRules.MaxPayload => $"{r} let through beyond the maximum",
            NbdCommand.Read or NbdCommand.Write or NbdCommand.Trim or NbdCommand.WriteZeroes or NbdCommand.BlockStatus when !inside => $"{r} let through past the end",
            NbdCommand.Write or NbdCommand.Trim or NbdCommand.WriteZeroes when !s.Writable => $"{r} let through on a read-only export",
            NbdCommand.BlockStatus when !s.BaseAllocation || r.Length == 0 => $"{r} let through without a context",
            NbdCommand.Read or NbdCommand.Write or NbdCommand.Trim or NbdCommand.WriteZeroes or NbdCommand.BlockStatus or NbdCommand.Flush => null,
            _ => $"{r}: unknown command let through",
        };
    }

    // Every option reply: the right magic and option, a length that matches, the type and payload shapes proto.md gives,
    // and a final reply (ACK or error) at the end unless the session ends or enters transmission by EXPORT_NAME.
    private static string? CheckOptionReplies(uint option, ReadOnlySpan<byte> replies, NbdNegotiationStep step)
    {
        if (option == 1) return step == NbdNegotiationStep.Close ? (replies.IsEmpty ? null : "EXPORT_NAME refused with bytes") :
            replies.Length is 10 or 134 ? null : $"EXPORT_NAME answered with {replies.Length} bytes";
        uint last = 0;
        while (!replies.IsEmpty)
        {
            if (replies.Length < 20 || BinaryPrimitives.ReadUInt64BigEndian(replies) != 0x3e889045565a9) return "malformed option reply header";
            if (BinaryPrimitives.ReadUInt32BigEndian(replies[8..]) != option) return "option reply for another option";
            last = BinaryPrimitives.ReadUInt32BigEndian(replies[12..]);
            int length = (int)BinaryPrimitives.ReadUInt32BigEndian(replies[16..]);
            if (length > replies.Length - 20) return "option reply longer than sent";
            var data = replies.Slice(20, length);
            if (last == 3 && (data.Length < 2 || (BinaryPrimitives.ReadUInt16BigEndian(data) is 0 && data.Length != 12)
                || (BinaryPrimitives.ReadUInt16BigEndian(data) is 3 && data.Length != 14))) return "malformed NBD_REP_INFO";
            if (last == 4 && data.Length < 5) return "malformed NBD_REP_META_CONTEXT";
            if ((last & 0x80000000) != 0 && data.Length > 4096) return "error message over 4096 bytes";
            replies = replies[(20 + length)..];
        }
        bool final = last == 1 || (last & 0x80000000) != 0;
        return final ? null : $"option {option} ended without a final reply (last type {last:x})";
    }

    /// <summary>Sends the bytes to the running server, reads whatever it answers until it closes, and checks it is healthy.</summary>
    private static async Task<string?> OverSocket(ServedImage served, byte[] bytes)
    {
        int faults = served.Server.Faults;
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await socket.ConnectAsync(new UnixDomainSocketEndPoint(served.SocketPath!));
        using var timeout = new CancellationTokenSource(CaseTimeout);
        var drain = Task.Run(async () =>
        {
            var buffer = new byte[1 << 20];
            long total = 0;
            int n;
            while ((n = await socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token)) > 0) total += n;
            return total;
        });
        try
        {
            int sent = 0;
            while (sent < bytes.Length) sent += await socket.SendAsync(bytes.AsMemory(sent), SocketFlags.None, timeout.Token);
            socket.Shutdown(SocketShutdown.Send);
        }
        catch (SocketException) { } // the server may close first (bad magic, ABORT)
        catch (OperationCanceledException) { return $"the server did not take the client's bytes within {CaseTimeout.TotalSeconds} s"; }
        try { await drain; }
        catch (OperationCanceledException) { return $"the server did not end the session within {CaseTimeout.TotalSeconds} s after the client stopped"; }
        catch (SocketException) { }
        if (served.Server.Faults != faults) return "internal error: " + string.Join("; ", served.Log);
        return null;
    }

    private static void Save(string dir, byte[] bytes, int index, string failure)
    {
        Directory.CreateDirectory(dir);
        string stem = Path.Combine(dir, $"{DateTime.UtcNow:yyyyMMddHHmmss}-{index}-nbd");
        File.WriteAllBytes(stem + ".bin", bytes);
        File.WriteAllText(stem + ".txt", failure + "\n");
    }
}
