using System.Buffers.Binary;
using System.Text;
using DiskSnapshotEngine.Tests.Infrastructure;

namespace DiskSnapshotEngine.Tests.Nbd;

/// <summary>
/// What a client sends in one session, as bytes, with the position of every field so the fuzzer can aim its edits at
/// magics, lengths, counts, flags and offsets rather than at payload bytes.
/// </summary>
public sealed class NbdTranscript
{
    private readonly MemoryStream _bytes = new();
    private readonly List<(int Offset, int Length)> _fields = new();

    public string Name { get; }

    public NbdTranscript(string name) => Name = name;

    public byte[] Bytes => _bytes.ToArray();

    public IReadOnlyList<(int Offset, int Length)> Fields => _fields;

    public NbdTranscript ClientFlags(uint flags) => U32(flags);

    public NbdTranscript Option(uint option, byte[] data)
    {
        U64(0x49484156454F5054).U32(option).U32((uint)data.Length);
        return Raw(data);
    }

    public NbdTranscript Request(ushort type, ulong offset, uint length, ushort flags = 0, byte[]? payload = null)
    {
        U32(0x25609513).U16(flags).U16(type).U64((ulong)_fields.Count).U64(offset).U32(length);
        return payload is null ? this : Raw(payload);
    }

    public static byte[] String32(string s)
    {
        var b = Encoding.UTF8.GetBytes(s);
        var d = new byte[4 + b.Length];
        BinaryPrimitives.WriteUInt32BigEndian(d, (uint)b.Length);
        b.CopyTo(d, 4);
        return d;
    }

    private NbdTranscript U16(ushort v) { Span<byte> b = stackalloc byte[2]; BinaryPrimitives.WriteUInt16BigEndian(b, v); return Field(b); }
    private NbdTranscript U32(uint v) { Span<byte> b = stackalloc byte[4]; BinaryPrimitives.WriteUInt32BigEndian(b, v); return Field(b); }
    private NbdTranscript U64(ulong v) { Span<byte> b = stackalloc byte[8]; BinaryPrimitives.WriteUInt64BigEndian(b, v); return Field(b); }

    private NbdTranscript Raw(byte[] data)
    {
        if (data.Length > 0) Field(data);
        return this;
    }

    private NbdTranscript Field(ReadOnlySpan<byte> b)
    {
        _fields.Add(((int)_bytes.Length, b.Length));
        _bytes.Write(b);
        return this;
    }

    /// <summary>The sessions the fuzzer starts from: every option and command, structured and simple, and a plain handshake.</summary>
    public static List<NbdTranscript> Seeds(long size)
    {
        var meta = NbdTestClient.MetaContextData("", "base:allocation");
        var structured = new NbdTranscript("structured").ClientFlags(3)
            .Option(8, Array.Empty<byte>())
            .Option(9, NbdTestClient.MetaContextData("", "base:"))
            .Option(10, meta)
            .Option(6, NbdTestClient.GoData("", 0, 1, 2, 3))
            .Option(7, NbdTestClient.GoData("", 3))
            .Request(0, 0, 65536)
            .Request(0, (ulong)size - 4096, 4096, flags: 4)
            .Request(7, 0, (uint)Math.Min(size, uint.MaxValue))
            .Request(7, 4096, 8192, flags: 8)
            .Request(1, 1000, 3000, flags: 1, payload: RandomData.Bytes(3000, 1))
            .Request(6, 8192, 65536, flags: 2)
            .Request(6, 1 << 20, 1 << 20)
            .Request(4, 2 << 20, 2 << 20)
            .Request(3, 0, 0)
            .Request(0, 900, 5000)
            .Request(2, 0, 0);
        var simple = new NbdTranscript("simple").ClientFlags(1)
            .Option(1, Array.Empty<byte>())
            .Request(0, 512, 1024)
            .Request(1, 0, 512, payload: RandomData.Bytes(512, 2))
            .Request(3, 0, 0)
            .Request(0, 0, 2048)
            .Request(2, 0, 0);
        var handshake = new NbdTranscript("handshake").ClientFlags(1)
            .Option(3, Array.Empty<byte>())
            .Option(99, new byte[] { 1, 2, 3 })
            .Option(5, Array.Empty<byte>())
            .Option(10, meta)
            .Option(7, NbdTestClient.GoData("other"))
            .Option(2, Array.Empty<byte>());
        return [structured, simple, handshake];
    }
}
