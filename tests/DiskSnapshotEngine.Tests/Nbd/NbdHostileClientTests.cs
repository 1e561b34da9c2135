using System.Buffers.Binary;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Nbd;

/// <summary>
/// Clients that break the rules: each gets the error proto.md names (or a disconnect where no error reply is possible),
/// the server keeps serving others, and the image is unchanged or consistent.
/// </summary>
public class NbdHostileClientTests
{
    private const long Size = 16L << 20;
    private const uint EPERM = 1, EINVAL = 22, ENOSPC = 28, EOVERFLOW = 75;

    private static (TempDirectory Dir, string Image) Disk(string format = "vhdx")
    {
        var dir = new TempDirectory("nbd-hostile");
        var paths = NbdTestImages.Chain(dir.Path, format, 2, Size, 1 << 20, seed: 2);
        return (dir, paths[^1]);
    }

    /// <summary>The server still answers a well-behaved client with the right bytes.</summary>
    private static void AssertStillServes(ServedImage served)
    {
        using var c = served.Connect().Negotiate();
        var (e, data, _) = c.Read(4096, 100_000);
        Assert.Equal(0u, e);
        var expected = new byte[100_000];
        served.Chain.Read(4096, expected);
        Assert.Equal(expected, data);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Requests_past_the_end_too_long_or_unknown_get_the_spec_errors_and_the_connection_goes_on(bool structured)
    {
        var (dir, image) = Disk();
        using var _ = dir;
        var hash = ContentHash.OfFile(image);
        using (var served = new ServedImage(image, dir.File("s.sock"), writable: true))
        using (var c = served.Connect().Negotiate(structured, metaContext: structured))
        {
            Assert.Equal(EINVAL, c.Read(Size - 10, 11).Error);
            Assert.Equal(EINVAL, c.Read(long.MaxValue, 1).Error);
            Assert.Equal(ENOSPC, c.Write(Size - 10, new byte[11]).Error);
            Assert.Equal(ENOSPC, c.Command(6, Size, 1).Error);   // WRITE_ZEROES
            Assert.Equal(EINVAL, c.Command(4, Size - 1, 2).Error); // TRIM
            Assert.Equal(EINVAL, c.Read(0, (32 << 20) + 1).Error); // longer than the advertised maximum
            Assert.Equal(EINVAL, c.Command(99, 0, 0).Error);       // unknown command
            Assert.Equal(EINVAL, c.Command(5, 0, 4096).Error);     // CACHE is not advertised
            Assert.Equal(EINVAL, c.Command(3, 0, 0, flags: 0x40).Error); // unknown flag
            Assert.Equal(EINVAL, c.Command(6, 0, 4096, flags: 0x10).Error); // FAST_ZERO is not advertised
            Assert.Equal(EINVAL, c.Command(3, 4096, 0).Error);     // FLUSH with an offset
            Assert.Equal(EINVAL, c.Read(0, 4096, flags: 2).Error); // NO_HOLE on a read
            if (!structured)
            {
                Assert.Equal(EINVAL, c.Read(0, 4096, flags: 4).Error); // DF without structured replies
                Assert.Equal(EINVAL, c.Command(7, 0, 4096).Error);     // BLOCK_STATUS without a context
            }

            // A write longer than the maximum: refused, its payload read and dropped so the stream stays in step.
            Assert.Equal(EINVAL, c.Write(0, new byte[(32 << 20) + 512]).Error);
            var (e, data, _) = c.Read(0, 4096);
            Assert.Equal(0u, e);
            Assert.Equal(4096, data.Length);
        }
        Assert.Equal(hash, ContentHash.OfFile(image));
    }

    [Fact]
    public void Error_chunks_carry_a_message_naming_the_problem()
    {
        var (dir, image) = Disk();
        using var _ = dir;
        using var served = new ServedImage(image, dir.File("s.sock"), writable: true);
        using var c = served.Connect().Negotiate();
        var (error, message) = c.Write(Size - 10, new byte[11]);
        Assert.Equal(ENOSPC, error);
        Assert.Equal($"Write of 11 bytes at offset {Size - 10} goes past the end of the export ({Size} bytes)", message);
        Assert.Contains("maximum block size 33554432", c.Command(0, 0, 40 << 20).Message);
    }

    [Fact]
    public void Dont_fragment_reads_are_one_data_chunk_up_to_4_MiB_and_EOVERFLOW_above()
    {
        var (dir, image) = Disk();
        using var _ = dir;
        using var served = new ServedImage(image, dir.File("s.sock"), writable: false);
        using var c = served.Connect().Negotiate();
        Assert.NotEqual(0, c.TransmissionFlags & (1 << 7)); // NBD_FLAG_SEND_DF
        c.SendRequest(0, 5, 0, 4 << 20, flags: 4);
        var chunks = c.ReadChunks(5);
        var data = Assert.Single(chunks);
        Assert.Equal(1, data.Type);
        Assert.Equal((4 << 20) + 8, data.Payload.Length);
        var expected = new byte[4 << 20];
        served.Chain.Read(0, expected);
        Assert.True(data.Payload.AsSpan(8).SequenceEqual(expected));
        Assert.Equal(EOVERFLOW, c.Read(0, (4 << 20) + 1, flags: 4).Error);
    }

    [Fact]
    public void A_read_only_export_refuses_writes_with_EPERM_and_says_so_in_its_flags()
    {
        var (dir, image) = Disk();
        using var _ = dir;
        var hash = ContentHash.OfFile(image);
        using var served = new ServedImage(image, dir.File("s.sock"), writable: false);
        using var c = served.Connect().Negotiate();
        Assert.NotEqual(0, c.TransmissionFlags & 2);     // NBD_FLAG_READ_ONLY
        Assert.NotEqual(0, c.TransmissionFlags & 0x100); // NBD_FLAG_CAN_MULTI_CONN
        Assert.Equal(EPERM, c.Write(0, new byte[512]).Error);
        Assert.Equal(EPERM, c.Command(6, 0, 4096).Error);
        Assert.Equal(EPERM, c.Command(4, 0, 1 << 20).Error);
        Assert.Equal(0u, c.Command(3, 0, 0).Error); // FLUSH is harmless
        Assert.Equal(hash, ContentHash.OfFile(image));
    }

    [Fact]
    public void Bad_request_magic_ends_the_connection_and_the_server_serves_the_next_client()
    {
        var (dir, image) = Disk();
        using var _ = dir;
        using var served = new ServedImage(image, dir.File("s.sock"), writable: false);
        using (var c = served.Connect().Negotiate())
        {
            c.SendRequest(0, 1, 0, 512, magic: 0x12560953);
            Assert.True(c.ServerClosed());
        }
        AssertStillServes(served);
    }

    [Fact]
    public void Handshake_mistakes_get_option_errors_and_only_unrecoverable_ones_close()
    {
        var (dir, image) = Disk();
        using var _ = dir;
        using var served = new ServedImage(image, dir.File("s.sock"), writable: false, o => o with { ExportName = "disk" });
        using (var c = served.Connect())
        {
            c.Greet();
            Assert.Equal(0x80000001u, c.OptionExpectFinal(77, new byte[3]).Single().Type);  // unknown option: ERR_UNSUP
            Assert.Equal(0x80000001u, c.OptionExpectFinal(5, Array.Empty<byte>()).Single().Type); // STARTTLS: no TLS here
            Assert.Equal(0x80000003u, c.OptionExpectFinal(7, new byte[] { 0, 0, 1, 0, 0 }).Single().Type); // GO name longer than the data
            Assert.Equal(0x80000003u, c.OptionExpectFinal(3, new byte[1]).Single().Type); // LIST takes no data
            Assert.Equal(0x80000003u, c.OptionExpectFinal(10, NbdTestClient.MetaContextData("", "base:allocation")).Single().Type); // SET_META_CONTEXT before STRUCTURED_REPLY
            var unknown = c.OptionExpectFinal(7, NbdTestClient.GoData("nope")).Single();
            Assert.Equal(0x80000006u, unknown.Type); // ERR_UNKNOWN, with a message
            Assert.Contains("nope", unknown.Text);

            var list = c.OptionExpectFinal(3, Array.Empty<byte>());
            Assert.Equal(new uint[] { 2, 1 }, list.Select(r => r.Type));
            Assert.Equal("disk", System.Text.Encoding.UTF8.GetString(list[0].Data, 4, (int)BinaryPrimitives.ReadUInt32BigEndian(list[0].Data)));

            var info = c.OptionExpectFinal(6, NbdTestClient.GoData("disk", 2)); // INFO: stays in negotiation
            Assert.Equal(1u, info[^1].Type);
            var blockSize = info.Single(r => r.Type == 3 && BinaryPrimitives.ReadUInt16BigEndian(r.Data) == 3).Data;
            Assert.Equal(new uint[] { 1, 4096, 32 << 20 }, new[] { 2, 6, 10 }.Select(i => BinaryPrimitives.ReadUInt32BigEndian(blockSize.AsSpan(i))));
            Assert.Contains(info, r => r.Type == 3 && BinaryPrimitives.ReadUInt16BigEndian(r.Data) == 2); // the description asked for

            // An option too long to read is skipped and refused.
            c.SendOption(77, new byte[100_000]);
            Assert.Equal(0x80000009u, c.ReadOptionReply().Type);

            Assert.Equal(1u, c.OptionExpectFinal(2, Array.Empty<byte>()).Single().Type); // ABORT: ACK, then closed
            Assert.True(c.ServerClosed());
        }
        using (var c = served.Connect())
        {
            c.Greet(clientFlags: 4); // a client flag the server did not advertise
            Assert.True(c.ServerClosed());
        }
        using (var c = served.Connect())
        {
            c.Greet();
            c.SendOption(1, System.Text.Encoding.UTF8.GetBytes("nope")); // EXPORT_NAME cannot be refused: disconnect
            Assert.True(c.ServerClosed());
        }
        using (var c = served.Connect())
        {
            c.Greet();
            c.SendOption(7, NbdTestClient.GoData("disk"), magic: 0x1122334455667788);
            Assert.True(c.ServerClosed());
        }
        using (var c = served.Connect())
        {
            // EXPORT_NAME of the default export: size, flags and (NO_ZEROES not asked) 124 zeros, then transmission.
            c.Greet(clientFlags: 1);
            c.SendOption(1, Array.Empty<byte>());
            var reply = c.ReadExactly(134);
            Assert.Equal(Size, (long)BinaryPrimitives.ReadUInt64BigEndian(reply));
            Assert.All(reply.AsSpan(10).ToArray(), b => Assert.Equal(0, b));
            Assert.Equal(0u, c.Read(0, 512).Error);
        }
        AssertStillServes(served);
    }

    [Fact]
    public void A_client_vanishing_mid_write_leaves_a_consistent_image_and_the_server_running()
    {
        var (dir, image) = Disk();
        using var _ = dir;
        using (var served = new ServedImage(image, dir.File("s.sock"), writable: true))
        {
            for (int cut = 0; cut < 3; cut++)
            {
                using var c = served.Connect().Negotiate();
                // Header of a 6 MiB write (two pieces), then part of the payload, then gone.
                c.SendRequest(1, 1, 1 << 20, 6 << 20);
                c.Send(new byte[cut switch { 0 => 0, 1 => 1000, _ => (5 << 20) }]);
            }
            using (var c = served.Connect())
            {
                c.Greet();
                c.SendOption(7, NbdTestClient.GoData("")[..3]); // an option header promising more than is sent
            }
            AssertStillServes(served);
        }
        using var chain = DiskImage.Open(image);
        Assert.False(chain.Check().HasErrors);
    }

    [Fact]
    public void A_client_that_never_finishes_the_handshake_is_disconnected_after_the_timeout()
    {
        var (dir, image) = Disk();
        using var _ = dir;
        using var served = new ServedImage(image, dir.File("s.sock"), writable: false, o => o with { HandshakeTimeout = TimeSpan.FromSeconds(1) });
        using var slow = served.Connect();
        slow.ReadExactly(18);
        slow.Send(new byte[] { 0, 0 }); // half of the client flags, then nothing
        var waited = System.Diagnostics.Stopwatch.StartNew();
        Assert.True(slow.ServerClosed());
        Assert.InRange(waited.Elapsed, TimeSpan.FromSeconds(0.5), TimeSpan.FromSeconds(30));
        Assert.True(SpinWait.SpinUntil(() => served.Server.ConnectionCount == 0, TimeSpan.FromSeconds(10)));
        // A client that negotiated in time keeps its connection beyond the timeout.
        using var ok = served.Connect().Negotiate();
        Thread.Sleep(1500);
        Assert.Equal(0u, ok.Read(0, 512).Error);
    }

    [Fact]
    public void Connections_beyond_the_limit_are_closed_on_arrival()
    {
        var (dir, image) = Disk();
        using var _ = dir;
        using var served = new ServedImage(image, dir.File("s.sock"), writable: false, o => o with { MaxConnections = 2 });
        using var a = served.Connect().Negotiate();
        using var b = served.Connect().Negotiate();
        using var c = served.Connect();
        Assert.Throws<EndOfStreamException>(() => c.ReadExactly(18));
        Assert.Contains(served.Log, l => l.Contains("2 connections are being served"));
        Assert.Equal(0u, a.Read(0, 512).Error);
    }

    [Fact]
    public void The_socket_file_is_made_refused_over_a_live_server_or_another_file_and_removed_at_exit()
    {
        var (dir, image) = Disk();
        using var _ = dir;
        string socket = dir.File("s.sock");
        File.WriteAllText(dir.File("file"), "mine");
        var notSocket = Assert.Throws<DiskImageException>(() => new ServedImage(image, dir.File("file"), writable: false));
        Assert.Equal(ErrorKind.AlreadyExists, notSocket.Kind);
        Assert.Equal("mine", File.ReadAllText(dir.File("file")));

        using (var served = new ServedImage(image, socket, writable: false))
        {
            Assert.True(File.Exists(socket));
            var live = Assert.Throws<DiskImageException>(() => new ServedImage(image, socket, writable: false));
            Assert.Equal(ErrorKind.AlreadyExists, live.Kind);
            Assert.Contains("another server is listening", live.Message);
        }
        Assert.False(File.Exists(socket));

        Assert.False(File.Exists(socket));
    }
}
