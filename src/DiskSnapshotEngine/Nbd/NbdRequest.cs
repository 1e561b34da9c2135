using System.Buffers.Binary;

namespace DiskSnapshotEngine.Nbd;

/// <summary>
/// A request message of the transmission phase (proto.md "Request message"), 28 bytes:
/// <code>
///  0  u32 magic 0x25609513   4 u16 command flags   6 u16 type
///  8  u64 handle            16 u64 offset         24 u32 length   (then length bytes for NBD_CMD_WRITE)
/// </code>
/// </summary>
internal readonly record struct NbdRequest(NbdCommandFlags Flags, ushort Type, ulong Handle, ulong Offset, uint Length)
{
    /// <summary>Bytes of the header on the wire.</summary>
    public const int Size = 28;

    /// <summary>The command (may be a value this server does not know).</summary>
    public NbdCommand Command => (NbdCommand)Type;

    /// <summary>Decodes a header; false when the magic is wrong (the stream cannot be trusted any more).</summary>
    public static bool TryParse(ReadOnlySpan<byte> header, out NbdRequest request)
    {
        request = default;
        if (header.Length < Size || BinaryPrimitives.ReadUInt32BigEndian(header) != NbdMagic.Request) return false;
        request = new NbdRequest(
            (NbdCommandFlags)BinaryPrimitives.ReadUInt16BigEndian(header[4..]),
            BinaryPrimitives.ReadUInt16BigEndian(header[6..]),
            BinaryPrimitives.ReadUInt64BigEndian(header[8..]),
            BinaryPrimitives.ReadUInt64BigEndian(header[16..]),
            BinaryPrimitives.ReadUInt32BigEndian(header[24..]));
        return true;
    }

    /// <summary>Encodes a header (the test client and the fuzzer build requests with it).</summary>
    public void WriteTo(Span<byte> header)
    {
        BinaryPrimitives.WriteUInt32BigEndian(header, NbdMagic.Request);
        BinaryPrimitives.WriteUInt16BigEndian(header[4..], (ushort)Flags);
        BinaryPrimitives.WriteUInt16BigEndian(header[6..], Type);
        BinaryPrimitives.WriteUInt64BigEndian(header[8..], Handle);
        BinaryPrimitives.WriteUInt64BigEndian(header[16..], Offset);
        BinaryPrimitives.WriteUInt32BigEndian(header[24..], Length);
    }

    /// <summary>True when the client sends <see cref="Length"/> bytes of payload after the header.</summary>
    public bool HasPayload => Command == NbdCommand.Write;
}

/// <summary>What the transmission phase was negotiated with: everything a request is checked against.</summary>
/// <param name="ExportSize">Size of the export in bytes.</param>
/// <param name="Flags">The transmission flags the client was sent.</param>
/// <param name="StructuredReplies">NBD_OPT_STRUCTURED_REPLY was acknowledged.</param>
/// <param name="BaseAllocation">base:allocation was selected for this export with NBD_OPT_SET_META_CONTEXT.</param>
internal readonly record struct NbdSession(long ExportSize, NbdTransmissionFlags Flags, bool StructuredReplies, bool BaseAllocation)
{
    /// <summary>True when the export takes writes.</summary>
    public bool Writable => (Flags & NbdTransmissionFlags.ReadOnly) == 0;
}

/// <summary>
/// The checks a request passes before the export sees it, as a pure function (the fuzzer calls it directly). Error
/// choices follow proto.md "Error values": EINVAL for unknown commands and flags, reads or trims past the end and
/// oversized requests; ENOSPC for writes past the end; EPERM for writes to a read-only export; EOVERFLOW for a
/// don't-fragment read longer than one content chunk may be.
/// </summary>
internal static class NbdRequestRules
{
    /// <summary>Largest READ or WRITE length (advertised as the maximum block size): the 2^25 every client accepts.</summary>
    public const int MaxPayload = 32 << 20;

    /// <summary>
    /// Requests are served in pieces of at most this many bytes, so a connection holds one such buffer whatever the
    /// request length. A don't-fragment read must fit in one piece (the spec requires at least 64 KiB).
    /// </summary>
    public const int PieceSize = 4 << 20;

    private const NbdCommandFlags KnownFlags = NbdCommandFlags.Fua | NbdCommandFlags.NoHole | NbdCommandFlags.DontFragment
        | NbdCommandFlags.ReqOne | NbdCommandFlags.FastZero;

    /// <summary>The error to answer <paramref name="r"/> with, or <see cref="NbdError.None"/> when the export should serve it.</summary>
    public static NbdError Check(in NbdRequest r, in NbdSession s)
    {
        if ((r.Flags & ~KnownFlags) != 0) return NbdError.Invalid;
        if ((r.Flags & NbdCommandFlags.Fua) != 0 && (s.Flags & NbdTransmissionFlags.SendFua) == 0) return NbdError.Invalid;
        // Each remaining flag belongs to one command; FAST_ZERO is not advertised, so it is never valid.
        var own = r.Command switch
        {
            NbdCommand.Read when (s.Flags & NbdTransmissionFlags.SendDf) != 0 => NbdCommandFlags.DontFragment,
            NbdCommand.WriteZeroes => NbdCommandFlags.NoHole,
            NbdCommand.BlockStatus => NbdCommandFlags.ReqOne,
            _ => NbdCommandFlags.None,
        };
        if ((r.Flags & ~(own | NbdCommandFlags.Fua)) != 0) return NbdError.Invalid;

        bool inside = r.Offset <= (ulong)s.ExportSize && r.Length <= (ulong)s.ExportSize - r.Offset;
        switch (r.Command)
        {
            case NbdCommand.Read:
                if (r.Length > MaxPayload || !inside) return NbdError.Invalid;
                if ((r.Flags & NbdCommandFlags.DontFragment) != 0 && r.Length > PieceSize) return NbdError.Overflow;
                return NbdError.None;
            case NbdCommand.Write:
                if (!s.Writable) return NbdError.Perm;
                if (r.Length > MaxPayload) return NbdError.Invalid;
                return inside ? NbdError.None : NbdError.NoSpace;
            case NbdCommand.WriteZeroes:
                if (!s.Writable) return NbdError.Perm;
                return inside ? NbdError.None : NbdError.NoSpace;
            case NbdCommand.Trim:
                if (!s.Writable) return NbdError.Perm;
                return inside ? NbdError.None : NbdError.Invalid;
            case NbdCommand.Flush:
                return r.Offset == 0 && r.Length == 0 ? NbdError.None : NbdError.Invalid;
            case NbdCommand.BlockStatus:
                // A status reply needs at least one extent of nonzero length, so an empty query cannot be answered.
                if (!s.StructuredReplies || !s.BaseAllocation || r.Length == 0 || !inside) return NbdError.Invalid;
                return NbdError.None;
            default:
                return NbdError.Invalid;
        }
    }
}
