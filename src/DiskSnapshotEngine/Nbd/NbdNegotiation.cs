using System.Buffers;
using System.Buffers.Binary;
using System.Text;

namespace DiskSnapshotEngine.Nbd;

/// <summary>What a server offers: one export.</summary>
/// <param name="Name">The export's name (the default export "" always names it too).</param>
/// <param name="Description">Shown by clients (NBD_INFO_DESCRIPTION, NBD_OPT_LIST).</param>
/// <param name="Size">Size in bytes.</param>
/// <param name="ReadOnly">True when writes are refused.</param>
/// <param name="PreferredBlockSize">NBD_INFO_BLOCK_SIZE preferred size (a power of two, at least 512).</param>
internal sealed record NbdExportInfo(string Name, string Description, long Size, bool ReadOnly, uint PreferredBlockSize)
{
    /// <summary>
    /// The chain takes writes of any length at any offset (it widens them with copy-on-write), so the minimum block
    /// size is 1; the maximum is the request cap.
    /// </summary>
    public const uint MinimumBlockSize = 1;

    /// <summary>True when a client's export name selects this export.</summary>
    public bool Matches(string? name) => name is not null && (name.Length == 0 || name == Name);
}

/// <summary>What the handshake does after an option.</summary>
internal enum NbdNegotiationStep
{
    /// <summary>Send the replies and read the next option.</summary>
    Continue,
    /// <summary>Send the replies and enter the transmission phase (NBD_OPT_GO acknowledged, or NBD_OPT_EXPORT_NAME).</summary>
    Transmission,
    /// <summary>Send the replies (if any) and close the connection (NBD_OPT_ABORT, or an export name that cannot be refused otherwise).</summary>
    Close,
}

/// <summary>
/// The option haggling of the fixed newstyle handshake (proto.md "Option types", "Option reply types") as a state
/// machine without I/O: each option goes in, its replies come out as bytes. The connection feeds it from the socket;
/// the fuzzer feeds it arbitrary options. TLS is not offered (NOTLS mode).
/// </summary>
internal sealed class NbdNegotiation
{
    /// <summary>The handshake flags the server sends.</summary>
    public const NbdHandshakeFlags ServerFlags = NbdHandshakeFlags.FixedNewstyle | NbdHandshakeFlags.NoZeroes;

    private readonly NbdExportInfo _export;
    private bool _noZeroes;

    public NbdNegotiation(NbdExportInfo export) => _export = export;

    /// <summary>NBD_OPT_STRUCTURED_REPLY was acknowledged.</summary>
    public bool StructuredReplies { get; private set; }

    /// <summary>base:allocation is selected for the export (the last SET_META_CONTEXT chose it).</summary>
    public bool BaseAllocation { get; private set; }

    /// <summary>The flags sent with the export: what the export supports, given what was negotiated so far.</summary>
    public NbdTransmissionFlags TransmissionFlags
    {
        get
        {
            // Every connection shares one chain, one lock and one flush (which makes all completed writes durable),
            // so FLUSH and FUA are visible across connections: the condition of CAN_MULTI_CONN, writable or not.
            var flags = NbdTransmissionFlags.HasFlags | NbdTransmissionFlags.SendFlush | NbdTransmissionFlags.SendFua
                | NbdTransmissionFlags.CanMultiConn;
            flags |= _export.ReadOnly ? NbdTransmissionFlags.ReadOnly : NbdTransmissionFlags.SendTrim | NbdTransmissionFlags.SendWriteZeroes;
            if (StructuredReplies) flags |= NbdTransmissionFlags.SendDf;
            return flags;
        }
    }

    /// <summary>What the transmission phase is checked against, once negotiation ended.</summary>
    public NbdSession Session => new(_export.Size, TransmissionFlags, StructuredReplies, BaseAllocation);

    /// <summary>
    /// Checks the client flags that follow the greeting. False means the connection must be dropped (proto.md: an
    /// unknown flag, or one the server did not advertise).
    /// </summary>
    public bool AcceptClientFlags(uint clientFlags)
    {
        if ((clientFlags & ~(uint)ServerFlags) != 0) return false;
        _noZeroes = (clientFlags & (uint)NbdHandshakeFlags.NoZeroes) != 0;
        return true;
    }

    /// <summary>Answers one option, appending its replies to <paramref name="output"/>.</summary>
    public NbdNegotiationStep Handle(uint option, ReadOnlySpan<byte> data, IBufferWriter<byte> output)
    {
        var request = NbdOptionRequest.Parse(option, data);
        if (request.Invalid is { } why)
        {
            if (option == NbdOption.SetMetaContext) BaseAllocation = false; // a failed SET still replaces the selection
            if (option == NbdOption.ExportName) return NbdNegotiationStep.Close; // cannot be answered with an error
            NbdWire.OptionError(output, option, NbdOptionReply.ErrInvalid, why);
            return NbdNegotiationStep.Continue;
        }
        switch (option)
        {
            case NbdOption.ExportName:
                if (!_export.Matches(request.ExportName)) return NbdNegotiationStep.Close;
                WriteExportNameReply(output);
                return NbdNegotiationStep.Transmission;
            case NbdOption.Abort:
                NbdWire.OptionReply(output, option, NbdOptionReply.Ack, default);
                return NbdNegotiationStep.Close;
            case NbdOption.List:
                NbdWire.OptionReply(output, option, NbdOptionReply.Server, ServerEntry());
                NbdWire.OptionReply(output, option, NbdOptionReply.Ack, default);
                return NbdNegotiationStep.Continue;
            case NbdOption.Info or NbdOption.Go:
                if (!_export.Matches(request.ExportName))
                {
                    NbdWire.OptionError(output, option, NbdOptionReply.ErrUnknown, $"no export named '{request.ExportName}' (this server has '{_export.Name}')");
                    return NbdNegotiationStep.Continue;
                }
                WriteInfo(output, option, request.InfoRequests);
                NbdWire.OptionReply(output, option, NbdOptionReply.Ack, default);
                return option == NbdOption.Go ? NbdNegotiationStep.Transmission : NbdNegotiationStep.Continue;
            case NbdOption.StructuredReply:
                StructuredReplies = true;
                NbdWire.OptionReply(output, option, NbdOptionReply.Ack, default);
                return NbdNegotiationStep.Continue;
            case NbdOption.ListMetaContext or NbdOption.SetMetaContext:
                return MetaContext(request, output);
            case NbdOption.StartTls:
                NbdWire.OptionError(output, option, NbdOptionReply.ErrUnsupported, "this server does not offer TLS; connect over its unix socket or a trusted network");
                return NbdNegotiationStep.Continue;
            default:
                NbdWire.OptionError(output, option, NbdOptionReply.ErrUnsupported, $"option {option} is not supported");
                return NbdNegotiationStep.Continue;
        }
    }

    private NbdNegotiationStep MetaContext(NbdOptionRequest request, IBufferWriter<byte> output)
    {
        bool set = request.Option == NbdOption.SetMetaContext;
        if (set) BaseAllocation = false;
        if (set && !StructuredReplies)
        {
            NbdWire.OptionError(output, request.Option, NbdOptionReply.ErrInvalid, "metadata contexts need structured replies (negotiate NBD_OPT_STRUCTURED_REPLY first)");
            return NbdNegotiationStep.Continue;
        }
        if (!_export.Matches(request.ExportName))
        {
            NbdWire.OptionError(output, request.Option, NbdOptionReply.ErrUnknown, $"no export named '{request.ExportName}'");
            return NbdNegotiationStep.Continue;
        }
        bool match = !set && request.Queries.Count == 0; // LIST with no query lists everything
        foreach (var q in request.Queries)
        {
            int colon = q.IndexOf(':', StringComparison.Ordinal);
            if (colon <= 0)
            {
                NbdWire.OptionError(output, request.Option, NbdOptionReply.ErrInvalid, $"query '{q}' does not start with a namespace and a colon");
                return NbdNegotiationStep.Continue;
            }
            // Unknown namespaces and leaf names are ignored; "base:" is a wildcard for LIST only.
            match |= q == NbdMetaContext.BaseAllocation || (!set && q == "base:");
        }
        if (match)
        {
            Span<byte> reply = stackalloc byte[4 + NbdMetaContext.BaseAllocation.Length];
            BinaryPrimitives.WriteUInt32BigEndian(reply, set ? NbdMetaContext.BaseAllocationId : 0);
            Encoding.ASCII.GetBytes(NbdMetaContext.BaseAllocation, reply[4..]);
            NbdWire.OptionReply(output, request.Option, NbdOptionReply.MetaContext, reply);
            if (set) BaseAllocation = true;
        }
        NbdWire.OptionReply(output, request.Option, NbdOptionReply.Ack, default);
        return NbdNegotiationStep.Continue;
    }

    private void WriteExportNameReply(IBufferWriter<byte> output)
    {
        int length = 10 + (_noZeroes ? 0 : 124);
        var span = output.GetSpan(length)[..length];
        span.Clear();
        BinaryPrimitives.WriteUInt64BigEndian(span, (ulong)_export.Size);
        BinaryPrimitives.WriteUInt16BigEndian(span[8..], (ushort)TransmissionFlags);
        output.Advance(length);
    }

    // NBD_INFO_EXPORT always; the block sizes always (they are constraints clients should know even unasked); the name
    // and description when asked.
    private void WriteInfo(IBufferWriter<byte> output, uint option, IReadOnlyList<ushort> requested)
    {
        Span<byte> info = stackalloc byte[14];
        BinaryPrimitives.WriteUInt16BigEndian(info, NbdInfo.Export);
        BinaryPrimitives.WriteUInt64BigEndian(info[2..], (ulong)_export.Size);
        BinaryPrimitives.WriteUInt16BigEndian(info[10..], (ushort)TransmissionFlags);
        NbdWire.OptionReply(output, option, NbdOptionReply.Info, info[..12]);

        BinaryPrimitives.WriteUInt16BigEndian(info, NbdInfo.BlockSize);
        BinaryPrimitives.WriteUInt32BigEndian(info[2..], NbdExportInfo.MinimumBlockSize);
        BinaryPrimitives.WriteUInt32BigEndian(info[6..], _export.PreferredBlockSize);
        BinaryPrimitives.WriteUInt32BigEndian(info[10..], NbdRequestRules.MaxPayload);
        NbdWire.OptionReply(output, option, NbdOptionReply.Info, info);

        if (requested.Contains(NbdInfo.Name)) WriteStringInfo(output, option, NbdInfo.Name, _export.Name);
        if (requested.Contains(NbdInfo.Description)) WriteStringInfo(output, option, NbdInfo.Description, _export.Description);
    }

    private static void WriteStringInfo(IBufferWriter<byte> output, uint option, ushort type, string value)
    {
        Span<byte> data = stackalloc byte[2 + NbdOptionRequest.MaxString];
        BinaryPrimitives.WriteUInt16BigEndian(data, type);
        int n = NbdWire.Utf8Prefix(value, data[2..]);
        NbdWire.OptionReply(output, option, NbdOptionReply.Info, data[..(2 + n)]);
    }

    // NBD_REP_SERVER: u32 name length, name, then a description for humans.
    private byte[] ServerEntry()
    {
        var name = Encoding.UTF8.GetBytes(_export.Name);
        Span<byte> description = stackalloc byte[NbdOptionRequest.MaxString];
        int n = NbdWire.Utf8Prefix(_export.Description, description);
        var entry = new byte[4 + name.Length + n];
        BinaryPrimitives.WriteUInt32BigEndian(entry, (uint)name.Length);
        name.CopyTo(entry, 4);
        description[..n].CopyTo(entry.AsSpan(4 + name.Length));
        return entry;
    }
}
