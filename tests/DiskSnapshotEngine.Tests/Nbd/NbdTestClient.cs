using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;
using DiskSnapshotEngine.Nbd;

namespace DiskSnapshotEngine.Tests.Nbd;

/// <summary>One option reply as the client reads it.</summary>
public sealed record OptionReply(uint Option, uint Type, byte[] Data)
{
    public bool IsError => (Type & 0x80000000) != 0;
    public string Text => Encoding.UTF8.GetString(Data);
}

/// <summary>One structured reply chunk.</summary>
public sealed record Chunk(ushort Flags, ushort Type, ulong Handle, byte[] Payload)
{
    public bool Done => (Flags & 1) != 0;
    public bool IsError => (Type & 0x8000) != 0;
    public uint Error => BinaryPrimitives.ReadUInt32BigEndian(Payload);
    public string Message => Encoding.UTF8.GetString(Payload, 6, BinaryPrimitives.ReadUInt16BigEndian(Payload.AsSpan(4)));
}

/// <summary>
/// A deliberately small NBD client written from the specification, for the tests: it can speak correctly (to check
/// what a server answers) and badly (raw bytes, wrong magic, vanishing mid-request). Replies are read strictly, so a
/// malformed reply from the server fails the test.
/// </summary>
public sealed class NbdTestClient : IDisposable
{
    private readonly Socket _socket;
    private readonly NetworkStream _stream;

    private NbdTestClient(Socket socket)
    {
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: true);
        _socket.ReceiveTimeout = 60_000;
    }

    public ushort HandshakeFlags { get; private set; }
    public long Size { get; private set; }
    public ushort TransmissionFlags { get; private set; }
    public bool Structured { get; private set; }
    public List<OptionReply> GoReplies { get; } = new();

    public static NbdTestClient Unix(string path)
    {
        var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        s.Connect(new UnixDomainSocketEndPoint(path));
        return new NbdTestClient(s);
    }

    public static NbdTestClient Tcp(int port)
    {
        var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        s.Connect(new IPEndPoint(IPAddress.Loopback, port));
        return new NbdTestClient(s);
    }

    /// <summary>Reads the greeting and sends the client flags.</summary>
    public void Greet(uint clientFlags = 3)
    {
        var g = ReadExactly(18);
        if (BinaryPrimitives.ReadUInt64BigEndian(g) != 0x4e42444d41474943 || BinaryPrimitives.ReadUInt64BigEndian(g.AsSpan(8)) != 0x49484156454F5054)
            throw new InvalidDataException("bad greeting");
        HandshakeFlags = BinaryPrimitives.ReadUInt16BigEndian(g.AsSpan(16));
        var f = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(f, clientFlags);
        Send(f);
    }

    /// <summary>Greets, negotiates structured replies and base:allocation as asked, then GO.</summary>
    public NbdTestClient Negotiate(bool structured = true, bool metaContext = true, string name = "")
    {
        Greet();
        if (structured)
        {
            var r = OptionExpectFinal(8, Array.Empty<byte>());
            if (r[^1].Type != 1) throw new InvalidDataException($"structured reply refused: {r[^1].Type:x}");
            Structured = true;
        }
        if (metaContext)
        {
            var r = OptionExpectFinal(10, MetaContextData(name, "base:allocation"));
            if (r[^1].Type != 1) throw new InvalidDataException("SET_META_CONTEXT failed");
        }
        var go = OptionExpectFinal(7, GoData(name, 3));
        if (go[^1].Type != 1) throw new InvalidDataException($"GO failed: {go[^1].Type:x} {go[^1].Text}");
        GoReplies.AddRange(go);
        var export = go.Single(x => x.Type == 3 && BinaryPrimitives.ReadUInt16BigEndian(x.Data) == 0);
        Size = (long)BinaryPrimitives.ReadUInt64BigEndian(export.Data.AsSpan(2));
        TransmissionFlags = BinaryPrimitives.ReadUInt16BigEndian(export.Data.AsSpan(10));
        return this;
    }

    public static byte[] GoData(string name, params ushort[] infos)
    {
        var n = Encoding.UTF8.GetBytes(name);
        var d = new byte[4 + n.Length + 2 + 2 * infos.Length];
        BinaryPrimitives.WriteUInt32BigEndian(d, (uint)n.Length);
        n.CopyTo(d, 4);
        BinaryPrimitives.WriteUInt16BigEndian(d.AsSpan(4 + n.Length), (ushort)infos.Length);
        for (int i = 0; i < infos.Length; i++) BinaryPrimitives.WriteUInt16BigEndian(d.AsSpan(6 + n.Length + 2 * i), infos[i]);
        return d;
    }

    public static byte[] MetaContextData(string name, params string[] queries)
    {
        var ms = new MemoryStream();
        void U32(uint v) { var b = new byte[4]; BinaryPrimitives.WriteUInt32BigEndian(b, v); ms.Write(b); }
        var n = Encoding.UTF8.GetBytes(name);
        U32((uint)n.Length);
        ms.Write(n);
        U32((uint)queries.Length);
        foreach (var q in queries)
        {
            var qb = Encoding.UTF8.GetBytes(q);
            U32((uint)qb.Length);
            ms.Write(qb);
        }
        return ms.ToArray();
    }

    public void SendOption(uint option, byte[] data, ulong magic = 0x49484156454F5054)
    {
        var h = new byte[16 + data.Length];
        BinaryPrimitives.WriteUInt64BigEndian(h, magic);
        BinaryPrimitives.WriteUInt32BigEndian(h.AsSpan(8), option);
        BinaryPrimitives.WriteUInt32BigEndian(h.AsSpan(12), (uint)data.Length);
        data.CopyTo(h, 16);
        Send(h);
    }

    public OptionReply ReadOptionReply()
    {
        var h = ReadExactly(20);
        if (BinaryPrimitives.ReadUInt64BigEndian(h) != 0x3e889045565a9) throw new InvalidDataException("bad option reply magic");
        uint length = BinaryPrimitives.ReadUInt32BigEndian(h.AsSpan(16));
        if (length > 1 << 20) throw new InvalidDataException($"option reply of {length} bytes");
        return new OptionReply(BinaryPrimitives.ReadUInt32BigEndian(h.AsSpan(8)), BinaryPrimitives.ReadUInt32BigEndian(h.AsSpan(12)), ReadExactly((int)length));
    }

    /// <summary>Sends an option and reads replies up to the final one (ACK or an error).</summary>
    public List<OptionReply> OptionExpectFinal(uint option, byte[] data)
    {
        SendOption(option, data);
        var replies = new List<OptionReply>();
        while (true)
        {
            var r = ReadOptionReply();
            if (r.Option != option) throw new InvalidDataException($"reply for option {r.Option}, expected {option}");
            replies.Add(r);
            if (r.Type == 1 || r.IsError) return replies;
        }
    }

    public void SendRequest(ushort type, ulong handle, ulong offset, uint length, ushort flags = 0, byte[]? payload = null, uint magic = 0x25609513)
    {
        var h = new byte[28 + (payload?.Length ?? 0)];
        new NbdRequest((NbdCommandFlags)flags, type, handle, offset, length).WriteTo(h);
        BinaryPrimitives.WriteUInt32BigEndian(h, magic);
        payload?.CopyTo(h, 28);
        Send(h);
    }

    /// <summary>A simple reply (header only): its error.</summary>
    public uint ReadSimpleReply(ulong handle)
    {
        var h = ReadExactly(16);
        if (BinaryPrimitives.ReadUInt32BigEndian(h) != 0x67446698) throw new InvalidDataException($"expected a simple reply, got magic {BinaryPrimitives.ReadUInt32BigEndian(h):x}");
        if (BinaryPrimitives.ReadUInt64BigEndian(h.AsSpan(8)) != handle) throw new InvalidDataException("wrong handle");
        return BinaryPrimitives.ReadUInt32BigEndian(h.AsSpan(4));
    }

    /// <summary>Reads a reply to a non-read command, simple or structured: its error (0 on success) and message.</summary>
    public (uint Error, string? Message) ReadStatus(ulong handle)
    {
        var magic = BinaryPrimitives.ReadUInt32BigEndian(Peek4());
        if (magic == 0x67446698) return (ReadSimpleReply(handle), null);
        var chunks = ReadChunks(handle);
        var error = chunks.FirstOrDefault(c => c.IsError);
        return error is null ? (0u, null) : (error.Error, error.Message);
    }

    private byte[]? _peeked;

    private byte[] Peek4() => _peeked ??= ReadExactly(4);

    public List<Chunk> ReadChunks(ulong handle)
    {
        var chunks = new List<Chunk>();
        while (true)
        {
            var h = ReadExactly(20);
            if (BinaryPrimitives.ReadUInt32BigEndian(h) != 0x668e33ef) throw new InvalidDataException($"expected a structured chunk, got magic {BinaryPrimitives.ReadUInt32BigEndian(h):x}");
            var c = new Chunk(BinaryPrimitives.ReadUInt16BigEndian(h.AsSpan(4)), BinaryPrimitives.ReadUInt16BigEndian(h.AsSpan(6)),
                BinaryPrimitives.ReadUInt64BigEndian(h.AsSpan(8)), ReadExactly((int)BinaryPrimitives.ReadUInt32BigEndian(h.AsSpan(16))));
            if (c.Handle != handle) throw new InvalidDataException("wrong handle");
            chunks.Add(c);
            if (c.Done) return chunks;
        }
    }

    /// <summary>Reads [offset, +length) and checks the reply's shape: chunks inside the range, not overlapping, covering it.</summary>
    public (uint Error, byte[] Data, int Holes) Read(long offset, int length, ushort flags = 0, ulong handle = 7)
    {
        SendRequest(0, handle, (ulong)offset, (uint)length, flags);
        var data = new byte[length];
        if (!Structured)
        {
            uint e = ReadSimpleReply(handle);
            if (e == 0) ReadExactly(length).CopyTo(data, 0);
            return (e, data, 0);
        }
        var covered = new bool[length];
        int holes = 0;
        foreach (var c in ReadChunks(handle))
        {
            if (c.IsError) return (c.Error, data, holes);
            if (c.Type == 0) continue;
            long at = (long)BinaryPrimitives.ReadUInt64BigEndian(c.Payload);
            int n = c.Type == 1 ? c.Payload.Length - 8 : (int)BinaryPrimitives.ReadUInt32BigEndian(c.Payload.AsSpan(8));
            if (c.Type == 2) holes++;
            if (at < offset || at + n > offset + length || n <= 0) throw new InvalidDataException($"chunk [{at},+{n}) outside the request");
            for (long i = at; i < at + n; i++)
            {
                if (covered[i - offset]) throw new InvalidDataException("overlapping chunks");
                covered[i - offset] = true;
            }
            if (c.Type == 1) c.Payload.AsSpan(8).CopyTo(data.AsSpan((int)(at - offset)));
        }
        if (covered.Contains(false)) throw new InvalidDataException("the chunks do not cover the request");
        return (0, data, holes);
    }

    public (uint Error, string? Message) Write(long offset, byte[] data, ushort flags = 0, ulong handle = 9)
    {
        SendRequest(1, handle, (ulong)offset, (uint)data.Length, flags, data);
        return ReadStatus(handle);
    }

    public (uint Error, string? Message) Command(ushort type, long offset, uint length, ushort flags = 0, ulong handle = 11)
    {
        SendRequest(type, handle, (ulong)offset, length, flags);
        return ReadStatus(handle);
    }

    /// <summary>BLOCK_STATUS: the base:allocation descriptors (length, flags).</summary>
    public List<(uint Length, uint Flags)> BlockStatus(long offset, uint length, ushort flags = 0, ulong handle = 13)
    {
        SendRequest(7, handle, (ulong)offset, length, flags);
        var chunks = ReadChunks(handle);
        if (chunks.FirstOrDefault(c => c.IsError) is { } e) throw new InvalidDataException($"block status error {e.Error}: {e.Message}");
        var status = chunks.Single(c => c.Type == 5);
        var list = new List<(uint, uint)>();
        for (int i = 4; i < status.Payload.Length; i += 8)
            list.Add((BinaryPrimitives.ReadUInt32BigEndian(status.Payload.AsSpan(i)), BinaryPrimitives.ReadUInt32BigEndian(status.Payload.AsSpan(i + 4))));
        return list;
    }

    public void Disconnect() => SendRequest(2, 0, 0, 0);

    public void Send(byte[] bytes) => _stream.Write(bytes);

    /// <summary>True when the server closed the connection (reads end of stream) within the receive timeout.</summary>
    public bool ServerClosed()
    {
        try { return _stream.Read(new byte[1]) == 0; }
        catch (IOException) { return true; }
    }

    public byte[] ReadExactly(int n)
    {
        var b = new byte[n];
        int start = 0;
        if (_peeked is not null)
        {
            int k = Math.Min(n, _peeked.Length);
            _peeked.AsSpan(0, k).CopyTo(b);
            _peeked = k < _peeked.Length ? _peeked[k..] : null;
            start = k;
        }
        _stream.ReadExactly(b, start, n - start);
        return b;
    }

    public void ShutdownSend() => _socket.Shutdown(SocketShutdown.Send);

    public void Dispose() => _stream.Dispose();
}
