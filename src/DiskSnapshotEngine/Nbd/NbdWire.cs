using System.Buffers;
using System.Buffers.Binary;
using System.Text;

namespace DiskSnapshotEngine.Nbd;

/// <summary>
/// Encodes the server's messages (proto.md "Fixed newstyle negotiation", "Simple reply message", "Structured reply
/// chunk message"). Headers are written into caller-provided spans so replies are sent without copying payloads.
/// </summary>
internal static class NbdWire
{
    /// <summary>Bytes of the newstyle greeting: 'NBDMAGIC', 'IHAVEOPT', u16 handshake flags.</summary>
    public const int GreetingSize = 18;
    /// <summary>Bytes of an option reply header: u64 magic, u32 option, u32 reply type, u32 length.</summary>
    public const int OptionReplyHeaderSize = 20;
    /// <summary>Bytes of a simple reply: u32 magic, u32 error, u64 handle.</summary>
    public const int SimpleReplySize = 16;
    /// <summary>Bytes of a structured chunk header: u32 magic, u16 flags, u16 type, u64 handle, u32 length.</summary>
    public const int ChunkHeaderSize = 20;
    /// <summary>An OFFSET_DATA chunk header with its u64 offset (the data follows).</summary>
    public const int DataChunkHeaderSize = ChunkHeaderSize + 8;
    /// <summary>A whole OFFSET_HOLE chunk: header, u64 offset, u32 hole size.</summary>
    public const int HoleChunkSize = ChunkHeaderSize + 12;

    public static void Greeting(Span<byte> to, NbdHandshakeFlags flags)
    {
        BinaryPrimitives.WriteUInt64BigEndian(to, NbdMagic.InitPassword);
        BinaryPrimitives.WriteUInt64BigEndian(to[8..], NbdMagic.Option);
        BinaryPrimitives.WriteUInt16BigEndian(to[16..], (ushort)flags);
    }

    /// <summary>Appends one option reply with its data.</summary>
    public static void OptionReply(IBufferWriter<byte> to, uint option, uint type, ReadOnlySpan<byte> data)
    {
        var span = to.GetSpan(OptionReplyHeaderSize + data.Length);
        BinaryPrimitives.WriteUInt64BigEndian(span, NbdMagic.OptionReply);
        BinaryPrimitives.WriteUInt32BigEndian(span[8..], option);
        BinaryPrimitives.WriteUInt32BigEndian(span[12..], type);
        BinaryPrimitives.WriteUInt32BigEndian(span[16..], (uint)data.Length);
        data.CopyTo(span[OptionReplyHeaderSize..]);
        to.Advance(OptionReplyHeaderSize + data.Length);
    }

    /// <summary>Appends an error option reply carrying a message for the user (truncated to the protocol's string limit).</summary>
    public static void OptionError(IBufferWriter<byte> to, uint option, uint type, string message)
    {
        Span<byte> text = stackalloc byte[NbdOptionRequest.MaxString];
        int n = Utf8Prefix(message, text);
        OptionReply(to, option, type, text[..n]);
    }

    public static void SimpleReply(Span<byte> to, NbdError error, ulong handle)
    {
        BinaryPrimitives.WriteUInt32BigEndian(to, NbdMagic.SimpleReply);
        BinaryPrimitives.WriteUInt32BigEndian(to[4..], (uint)error);
        BinaryPrimitives.WriteUInt64BigEndian(to[8..], handle);
    }

    public static void ChunkHeader(Span<byte> to, ushort flags, ushort type, ulong handle, uint length)
    {
        BinaryPrimitives.WriteUInt32BigEndian(to, NbdMagic.StructuredReply);
        BinaryPrimitives.WriteUInt16BigEndian(to[4..], flags);
        BinaryPrimitives.WriteUInt16BigEndian(to[6..], type);
        BinaryPrimitives.WriteUInt64BigEndian(to[8..], handle);
        BinaryPrimitives.WriteUInt32BigEndian(to[16..], length);
    }

    /// <summary>The header of an OFFSET_DATA chunk carrying <paramref name="dataLength"/> bytes at <paramref name="offset"/>.</summary>
    public static void DataChunkHeader(Span<byte> to, ushort flags, ulong handle, ulong offset, int dataLength)
    {
        ChunkHeader(to, flags, NbdChunk.OffsetData, handle, (uint)(8 + dataLength));
        BinaryPrimitives.WriteUInt64BigEndian(to[ChunkHeaderSize..], offset);
    }

    public static void HoleChunk(Span<byte> to, ushort flags, ulong handle, ulong offset, uint length)
    {
        ChunkHeader(to, flags, NbdChunk.OffsetHole, handle, 12);
        BinaryPrimitives.WriteUInt64BigEndian(to[ChunkHeaderSize..], offset);
        BinaryPrimitives.WriteUInt32BigEndian(to[(ChunkHeaderSize + 8)..], length);
    }

    /// <summary>A whole NBD_REPLY_TYPE_ERROR chunk (final) with a message; returns its length.</summary>
    public static int ErrorChunk(Span<byte> to, ulong handle, NbdError error, string message)
    {
        int n = Utf8Prefix(message, to[(ChunkHeaderSize + 6)..]);
        ChunkHeader(to, NbdChunk.FlagDone, NbdChunk.Error, handle, (uint)(6 + n));
        BinaryPrimitives.WriteUInt32BigEndian(to[ChunkHeaderSize..], (uint)error);
        BinaryPrimitives.WriteUInt16BigEndian(to[(ChunkHeaderSize + 4)..], (ushort)n);
        return ChunkHeaderSize + 6 + n;
    }

    /// <summary>The UTF-8 bytes of <paramref name="s"/> that fit in <paramref name="to"/> (and the 4096-byte string limit), whole characters only.</summary>
    public static int Utf8Prefix(string s, Span<byte> to)
    {
        int room = Math.Min(to.Length, NbdOptionRequest.MaxString);
        if (Encoding.UTF8.GetByteCount(s) <= room) return Encoding.UTF8.GetBytes(s, to);
        int chars = Math.Min(s.Length, room / 3); // at most 3 bytes per UTF-16 unit
        if (chars > 0 && char.IsHighSurrogate(s[chars - 1])) chars--;
        return Encoding.UTF8.GetBytes(s.AsSpan(0, chars), to);
    }
}
