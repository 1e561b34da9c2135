using System.Buffers.Binary;
using System.Text;

namespace DiskSnapshotEngine.Nbd;

/// <summary>
/// One option of the fixed newstyle handshake (proto.md "Option types"), decoded from its data as a pure function:
/// the fuzzer calls <see cref="Parse"/> with any bytes. <see cref="Invalid"/> says why the data is syntactically
/// wrong (the option is then answered NBD_REP_ERR_INVALID).
/// <code>
/// header:  u64 'IHAVEOPT'  u32 option  u32 data length
/// GO/INFO: u32 name length, name, u16 n, n x u16 info request
/// LIST_/SET_META_CONTEXT: u32 name length, name, u32 n, n x (u32 query length, query)
/// </code>
/// </summary>
/// <param name="Option">The option number as sent.</param>
/// <param name="ExportName">The export named by EXPORT_NAME, INFO, GO and the META_CONTEXT options.</param>
/// <param name="InfoRequests">The NBD_INFO types asked for by INFO and GO.</param>
/// <param name="Queries">The metadata context queries of LIST_/SET_META_CONTEXT.</param>
/// <param name="Invalid">Why the data cannot be decoded, or null.</param>
internal sealed record NbdOptionRequest(uint Option, string? ExportName, IReadOnlyList<ushort> InfoRequests,
    IReadOnlyList<string> Queries, string? Invalid)
{
    /// <summary>Bytes of the option header on the wire.</summary>
    public const int HeaderSize = 16;

    /// <summary>Longest string the protocol allows (export names, queries, messages).</summary>
    public const int MaxString = 4096;

    /// <summary>
    /// Option data this server reads at most; a longer option is skipped and answered NBD_REP_ERR_TOO_BIG. The largest
    /// meaningful option is a META_CONTEXT query list, far below this.
    /// </summary>
    public const int MaxData = 64 << 10;

    private static readonly UTF8Encoding s_strictUtf8 = new(false, throwOnInvalidBytes: true);

    /// <summary>Decodes an option header: false when the magic is not 'IHAVEOPT'.</summary>
    public static bool TryParseHeader(ReadOnlySpan<byte> header, out uint option, out uint length)
    {
        option = length = 0;
        if (header.Length < HeaderSize || BinaryPrimitives.ReadUInt64BigEndian(header) != NbdMagic.Option) return false;
        option = BinaryPrimitives.ReadUInt32BigEndian(header[8..]);
        length = BinaryPrimitives.ReadUInt32BigEndian(header[12..]);
        return true;
    }

    /// <summary>Decodes the data of option <paramref name="option"/>; never throws.</summary>
    public static NbdOptionRequest Parse(uint option, ReadOnlySpan<byte> data)
    {
        var reader = new Reader(data);
        switch (option)
        {
            case NbdOption.ExportName:
                return reader.String(data.Length, out var exportName) is { } bad0 ? Fail(option, bad0) : new(option, exportName, [], [], null);
            case NbdOption.Info or NbdOption.Go:
            {
                if (reader.LengthPrefixedString(out var name) is { } bad) return Fail(option, bad);
                if (!reader.U16(out ushort n)) return Fail(option, "the option ends before its count of information requests");
                if (reader.Remaining != n * 2) return Fail(option, $"{n} information requests need {n * 2} bytes, {reader.Remaining} follow");
                var requests = new ushort[n];
                for (int i = 0; i < n; i++) reader.U16(out requests[i]);
                return new(option, name, requests, [], null);
            }
            case NbdOption.ListMetaContext or NbdOption.SetMetaContext:
            {
                if (reader.LengthPrefixedString(out var name) is { } bad) return Fail(option, bad);
                if (!reader.U32(out uint n)) return Fail(option, "the option ends before its count of queries");
                // Every query takes at least its 4-byte length, so the count is bounded by the data already read.
                if (n > reader.Remaining / 4) return Fail(option, $"{n} queries cannot fit in {reader.Remaining} bytes");
                var queries = new string[n];
                for (int i = 0; i < n; i++)
                    if (reader.LengthPrefixedString(out queries[i]) is { } badQuery) return Fail(option, badQuery);
                if (reader.Remaining != 0) return Fail(option, $"{reader.Remaining} bytes follow the last query");
                return new(option, name, [], queries, null);
            }
            case NbdOption.List or NbdOption.StructuredReply:
                return data.IsEmpty ? new(option, null, [], [], null) : Fail(option, "the option takes no data");
            default:
                // ABORT ignores its data (the spec asks servers to); unknown options are answered NBD_REP_ERR_UNSUP.
                return new(option, null, [], [], null);
        }
    }

    private static NbdOptionRequest Fail(uint option, string why) => new(option, null, [], [], why);

    /// <summary>Sequential big-endian reads over the option data, with every length checked against what remains.</summary>
    private ref struct Reader(ReadOnlySpan<byte> data)
    {
        private ReadOnlySpan<byte> _rest = data;

        public readonly int Remaining => _rest.Length;

        public bool U16(out ushort value)
        {
            bool ok = Take(2, out var bytes);
            value = ok ? BinaryPrimitives.ReadUInt16BigEndian(bytes) : (ushort)0;
            return ok;
        }

        public bool U32(out uint value)
        {
            bool ok = Take(4, out var bytes);
            value = ok ? BinaryPrimitives.ReadUInt32BigEndian(bytes) : 0;
            return ok;
        }

        /// <summary>The next <paramref name="length"/> bytes, consumed; false (nothing consumed) when fewer remain.</summary>
        private bool Take(int length, out ReadOnlySpan<byte> bytes)
        {
            bytes = default;
            if (_rest.Length < length) return false;
            bytes = _rest[..length];
            _rest = _rest[length..];
            return true;
        }

        /// <summary>A u32 length then that many bytes of string; returns the reason when it is not one.</summary>
        public string? LengthPrefixedString(out string value)
        {
            value = "";
            if (!U32(out uint length)) return "the option ends inside a string length";
            if (length > (uint)_rest.Length) return $"a string of {length} bytes does not fit in the {_rest.Length} bytes left";
            return String((int)length, out value);
        }

        /// <summary>The next <paramref name="length"/> bytes as a protocol string (UTF-8, no NUL, at most 4096 bytes).</summary>
        public string? String(int length, out string value)
        {
            value = "";
            if (length > MaxString) return $"a string of {length} bytes is longer than the {MaxString} the protocol allows";
            if (!Take(length, out var bytes)) return $"a string of {length} bytes does not fit in the {_rest.Length} bytes left";
            if (bytes.Contains((byte)0)) return "a string contains a NUL byte";
            try { value = s_strictUtf8.GetString(bytes); }
            catch (DecoderFallbackException) { return "a string is not valid UTF-8"; }
            return null;
        }
    }
}
