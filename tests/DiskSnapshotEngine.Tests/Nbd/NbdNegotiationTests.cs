using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using DiskSnapshotEngine.Nbd;

namespace DiskSnapshotEngine.Tests.Nbd;

/// <summary>The handshake state machine on its own (no socket): the replies proto.md prescribes, byte for byte.</summary>
public class NbdNegotiationTests
{
    private static readonly NbdExportInfo s_export = new("disk", "a test disk", 1 << 20, ReadOnly: false, 4096);

    private static (NbdNegotiationStep Step, List<(uint Type, byte[] Data)> Replies) Handle(NbdNegotiation n, uint option, byte[] data)
    {
        var output = new ArrayBufferWriter<byte>();
        var step = n.Handle(option, data, output);
        var replies = new List<(uint, byte[])>();
        var s = output.WrittenSpan;
        while (s.Length >= 20 && BinaryPrimitives.ReadUInt64BigEndian(s) == 0x3e889045565a9)
        {
            Assert.Equal(option, BinaryPrimitives.ReadUInt32BigEndian(s[8..]));
            int length = (int)BinaryPrimitives.ReadUInt32BigEndian(s[16..]);
            replies.Add((BinaryPrimitives.ReadUInt32BigEndian(s[12..]), s.Slice(20, length).ToArray()));
            s = s[(20 + length)..];
        }
        return (step, replies);
    }

    [Fact]
    public void Export_name_sends_size_and_flags_with_or_without_the_124_zeros()
    {
        foreach (var (clientFlags, length) in new[] { (1u, 134), (3u, 10) })
        {
            var n = new NbdNegotiation(s_export);
            Assert.True(n.AcceptClientFlags(clientFlags));
            var output = new ArrayBufferWriter<byte>();
            Assert.Equal(NbdNegotiationStep.Transmission, n.Handle(1, Encoding.UTF8.GetBytes("disk"), output));
            Assert.Equal(length, output.WrittenCount);
            Assert.Equal(1UL << 20, BinaryPrimitives.ReadUInt64BigEndian(output.WrittenSpan));
        }
        Assert.False(new NbdNegotiation(s_export).AcceptClientFlags(1 | 8));
    }

    [Fact]
    public void Meta_context_queries_select_base_allocation_only_as_the_spec_says()
    {
        var n = new NbdNegotiation(s_export);
        // Without structured replies SET is invalid; LIST is allowed.
        Assert.Equal(0x80000003u, Handle(n, 10, NbdTestClient.MetaContextData("disk", "base:allocation")).Replies.Single().Type);
        var list = Handle(n, 9, NbdTestClient.MetaContextData("disk", "base:")).Replies;
        Assert.Equal(new uint[] { 4, 1 }, list.Select(r => r.Type));
        Assert.Equal(0u, BinaryPrimitives.ReadUInt32BigEndian(list[0].Data)); // LIST replies carry id 0
        Assert.Equal("base:allocation", Encoding.UTF8.GetString(list[0].Data, 4, list[0].Data.Length - 4));
        Assert.Equal(2, Handle(n, 9, NbdTestClient.MetaContextData("")).Replies.Count); // no query: everything

        Handle(n, 8, Array.Empty<byte>());
        Assert.Equal(new uint[] { 1 }, Handle(n, 10, NbdTestClient.MetaContextData("disk", "base:", "qemu:dirty-bitmap:x")).Replies.Select(r => r.Type));
        Assert.False(n.BaseAllocation); // "base:" and unknown namespaces select nothing in SET
        var set = Handle(n, 10, NbdTestClient.MetaContextData("", "base:allocation")).Replies;
        Assert.Equal(new uint[] { 4, 1 }, set.Select(r => r.Type));
        Assert.Equal(NbdMetaContext.BaseAllocationId, BinaryPrimitives.ReadUInt32BigEndian(set[0].Data));
        Assert.True(n.BaseAllocation);
        // A failed SET still replaces the selection.
        Assert.Equal(0x80000003u, Handle(n, 10, NbdTestClient.MetaContextData("", "nocolon")).Replies.Single().Type);
        Assert.False(n.BaseAllocation);
        Assert.Equal(0x80000006u, Handle(n, 10, NbdTestClient.MetaContextData("other", "base:allocation")).Replies.Single().Type);
    }

    [Fact]
    public void Transmission_flags_follow_the_export_and_what_was_negotiated()
    {
        var n = new NbdNegotiation(s_export);
        var flags = n.TransmissionFlags;
        Assert.Equal(NbdTransmissionFlags.HasFlags | NbdTransmissionFlags.SendFlush | NbdTransmissionFlags.SendFua | NbdTransmissionFlags.SendTrim
            | NbdTransmissionFlags.SendWriteZeroes | NbdTransmissionFlags.CanMultiConn, flags); // no DF before structured replies
        Handle(n, 8, Array.Empty<byte>());
        Assert.True(n.TransmissionFlags.HasFlag(NbdTransmissionFlags.SendDf));

        var ro = new NbdNegotiation(s_export with { ReadOnly = true }).TransmissionFlags;
        Assert.True(ro.HasFlag(NbdTransmissionFlags.ReadOnly));
        Assert.False(ro.HasFlag(NbdTransmissionFlags.SendTrim) || ro.HasFlag(NbdTransmissionFlags.SendWriteZeroes));
    }

    [Fact]
    public void Go_answers_export_and_block_size_info_then_enters_transmission()
    {
        var n = new NbdNegotiation(s_export);
        var (step, replies) = Handle(n, 7, NbdTestClient.GoData("", 1));
        Assert.Equal(NbdNegotiationStep.Transmission, step);
        Assert.Equal(1u, replies[^1].Type);
        var infos = replies.Where(r => r.Type == 3).ToDictionary(r => BinaryPrimitives.ReadUInt16BigEndian(r.Data), r => r.Data);
        Assert.Equal(12, infos[0].Length);
        Assert.Equal(14, infos[3].Length);
        Assert.Equal("disk", Encoding.UTF8.GetString(infos[1], 2, infos[1].Length - 2)); // NBD_INFO_NAME, asked for
        Assert.False(infos.ContainsKey(2)); // the description was not asked for
    }
}
