using System.Buffers;
using System.Buffers.Binary;
using System.Net.Sockets;
using DiskSnapshotEngine.Errors;

namespace DiskSnapshotEngine.Nbd;

/// <summary>
/// One client, on its own thread: the fixed newstyle handshake (bounded in time and in option count), then requests
/// served one after another. A client that breaks the protocol where no error reply is possible (bad magic, unknown
/// client flags, an unknown name with NBD_OPT_EXPORT_NAME) is disconnected; every other mistake gets an error reply
/// and the connection goes on. Nothing a client sends can make the server allocate more than one piece buffer.
/// </summary>
internal sealed class NbdConnection
{
    /// <summary>Options one handshake may send before the server decides the client is not going to finish it.</summary>
    public const int MaxOptions = 1024;

    private readonly Socket _socket;
    private readonly NbdExport _export;
    private readonly ArrayPool<byte> _pool;
    private readonly TimeSpan _handshakeTimeout;
    private readonly Action<string> _fault;
    private readonly NbdReceiver _in;
    // Handshake, then Idle (waiting for a request) and Busy (serving one) in turn, until Stopping.
    private const int Handshaking = 0, Idle = 1, Stopping = 2, Busy = 3;
    private int _state = Handshaking;

    /// <param name="socket">The accepted socket (owned: closed when the connection ends).</param>
    /// <param name="export">The export.</param>
    /// <param name="pool">Where piece buffers come from.</param>
    /// <param name="handshakeTimeout">Time a client has to reach the transmission phase.</param>
    /// <param name="fault">Told about unexpected failures (bugs), which end this connection but not the server.</param>
    public NbdConnection(Socket socket, NbdExport export, ArrayPool<byte> pool, TimeSpan handshakeTimeout, Action<string> fault)
    {
        _socket = socket;
        _export = export;
        _pool = pool;
        _handshakeTimeout = handshakeTimeout;
        _fault = fault;
        _in = new NbdReceiver(socket);
    }

    /// <summary>Serves the client until it disconnects, breaks the protocol, or the server stops.</summary>
    public void Run()
    {
        try
        {
            NbdSession session;
            using (new Timer(_ => HandshakeExpired(), null, _handshakeTimeout, Timeout.InfiniteTimeSpan))
            {
                if (Handshake() is not { } negotiated) return;
                session = negotiated;
                // The timer must not cut a connection that made it: only a connection still negotiating is dropped.
                if (Interlocked.CompareExchange(ref _state, Idle, Handshaking) != Handshaking) return;
            }
            Transmission(session);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException or IOException)
        {
            // The client went away, or the server cut the connection (handshake timeout, stop): nothing to report.
        }
        catch (Exception e)
        {
            _fault($"NBD connection ended by an internal error: {e.GetType().Name}: {e.Message}");
        }
        finally
        {
            _socket.Dispose();
        }
    }

    /// <summary>
    /// Asks the connection to end after the request it is serving (proto.md: a server that shuts down waits for
    /// in-flight requests, then disconnects). A connection waiting for its next request, or still negotiating, is
    /// woken by shutting the socket's receive side; one in the middle of a request finishes it first, payload included.
    /// </summary>
    public void Stop()
    {
        if (Interlocked.Exchange(ref _state, Stopping) == Busy) return;
        try { _socket.Shutdown(SocketShutdown.Receive); }
        catch (Exception e) when (e is SocketException or ObjectDisposedException) { }
    }

    /// <summary>Drops the connection at once (a client that does not read its replies during a stop).</summary>
    public void Abort()
    {
        try { _socket.Shutdown(SocketShutdown.Both); }
        catch (Exception e) when (e is SocketException or ObjectDisposedException) { }
    }

    private void HandshakeExpired()
    {
        if (Interlocked.CompareExchange(ref _state, Stopping, Handshaking) == Handshaking) Abort();
    }

    private NbdSession? Handshake()
    {
        var negotiation = new NbdNegotiation(_export.Info);
        var output = new ArrayBufferWriter<byte>(1024);
        var sender = new NbdReplySender(_socket, _export, _pool, structured: false);
        Span<byte> bytes = stackalloc byte[Math.Max(NbdOptionRequest.HeaderSize, NbdWire.GreetingSize)];
        NbdWire.Greeting(bytes, NbdNegotiation.ServerFlags);
        sender.SendAll(bytes[..NbdWire.GreetingSize]);
        if (!_in.ReadExact(bytes[..4]) || !negotiation.AcceptClientFlags(BinaryPrimitives.ReadUInt32BigEndian(bytes))) return null;

        for (int count = 0; count < MaxOptions; count++)
        {
            if (!_in.ReadExact(bytes[..NbdOptionRequest.HeaderSize]) || !NbdOptionRequest.TryParseHeader(bytes, out uint option, out uint length)) return null;
            output.ResetWrittenCount();
            NbdNegotiationStep step;
            if (length > NbdOptionRequest.MaxData)
            {
                if (option == NbdOption.ExportName || !_in.Skip(length)) return null;
                NbdWire.OptionError(output, option, NbdOptionReply.ErrTooBig, $"option data of {length} bytes is more than the {NbdOptionRequest.MaxData} this server reads");
                step = NbdNegotiationStep.Continue;
            }
            else
            {
                var data = _pool.Rent((int)length);
                try
                {
                    if (!_in.ReadExact(data.AsSpan(0, (int)length))) return null;
                    step = negotiation.Handle(option, data.AsSpan(0, (int)length), output);
                }
                finally { _pool.Return(data); }
            }
            sender.SendAll(output.WrittenSpan);
            if (step == NbdNegotiationStep.Close) return null;
            if (step == NbdNegotiationStep.Transmission) return negotiation.Session;
        }
        return null;
    }

    private void Transmission(NbdSession session)
    {
        var replies = new NbdReplySender(_socket, _export, _pool, session.StructuredReplies);
        Span<byte> header = stackalloc byte[NbdRequest.Size];
        while (_in.ReadExact(header))
        {
            if (Interlocked.CompareExchange(ref _state, Busy, Idle) != Idle) return;
            if (!Serve(header, session, replies)) return;
            if (Interlocked.CompareExchange(ref _state, Idle, Busy) != Busy) return; // a stop came while serving
        }
    }

    /// <summary>Serves one request; false when the connection must end (disconnect request, broken stream).</summary>
    private bool Serve(ReadOnlySpan<byte> header, in NbdSession session, NbdReplySender replies)
    {
        // A wrong magic means the stream is out of step: nothing after it can be trusted (hard disconnect).
        if (!NbdRequest.TryParse(header, out var r) || r.Command == NbdCommand.Disconnect) return false;
        var error = NbdRequestRules.Check(r, session);
        if (error != NbdError.None)
        {
            if (r.HasPayload && !_in.Skip(r.Length)) return false;
            replies.Status(r.Handle, error, Describe(r, error, session.ExportSize));
            return true;
        }
        switch (r.Command)
        {
            case NbdCommand.Read:
                return replies.Read(r);
            case NbdCommand.Write:
                return Write(r, replies);
            case NbdCommand.BlockStatus:
                replies.BlockStatus(r);
                return true;
            default: // FLUSH, TRIM, WRITE_ZEROES: the only other commands Check lets through
                Apply(r, replies);
                return true;
        }
    }

    // A write is received piece by piece into one pooled buffer. After a failure the rest of the payload is still read
    // (and dropped) so that the next request starts where the client put it.
    private bool Write(in NbdRequest r, NbdReplySender replies)
    {
        long offset = (long)r.Offset;
        long remaining = r.Length;
        NbdError error = NbdError.None;
        string? message = null;
        var buffer = _pool.Rent((int)Math.Min(remaining, NbdRequestRules.PieceSize));
        try
        {
            while (remaining > 0)
            {
                int n = (int)Math.Min(remaining, NbdRequestRules.PieceSize);
                if (!_in.ReadExact(buffer.AsSpan(0, n))) return false;
                if (error == NbdError.None)
                {
                    try { _export.Write(offset, buffer.AsSpan(0, n)); }
                    catch (DiskImageException e) { (error, message) = (NbdExport.ErrorOf(e), e.Message); }
                }
                offset += n;
                remaining -= n;
            }
        }
        finally { _pool.Return(buffer); }
        if (error == NbdError.None && (r.Flags & NbdCommandFlags.Fua) != 0)
        {
            try { _export.Flush(); }
            catch (DiskImageException e) { (error, message) = (NbdExport.ErrorOf(e), e.Message); }
        }
        replies.Status(r.Handle, error, message);
        return true;
    }

    private void Apply(in NbdRequest r, NbdReplySender replies)
    {
        NbdError error = NbdError.None;
        string? message = null;
        try
        {
            switch (r.Command)
            {
                case NbdCommand.Flush:
                    _export.Flush();
                    break;
                case NbdCommand.Trim:
                    _export.Trim((long)r.Offset, r.Length);
                    break;
                case NbdCommand.WriteZeroes:
                    _export.WriteZeroes((long)r.Offset, r.Length, noHole: (r.Flags & NbdCommandFlags.NoHole) != 0);
                    break;
            }
            if ((r.Flags & NbdCommandFlags.Fua) != 0 && r.Command != NbdCommand.Flush) _export.Flush();
        }
        catch (DiskImageException e) { (error, message) = (NbdExport.ErrorOf(e), e.Message); }
        replies.Status(r.Handle, error, message);
    }

    private static string Describe(in NbdRequest r, NbdError error, long size)
    {
        string what = r.Type <= (ushort)NbdCommand.BlockStatus ? r.Command.ToString() : $"command {r.Type}";
        return error switch
        {
            NbdError.Perm => $"{what}: the export is read-only",
            NbdError.Overflow => $"{what} of {r.Length} bytes cannot be sent unfragmented (at most {NbdRequestRules.PieceSize})",
            NbdError.NoSpace => $"{what} of {r.Length} bytes at offset {r.Offset} goes past the end of the export ({size} bytes)",
            _ when r.Length > NbdRequestRules.MaxPayload && r.Command is NbdCommand.Read or NbdCommand.Write =>
                $"{what} of {r.Length} bytes is longer than the maximum block size {NbdRequestRules.MaxPayload}",
            _ when r.Offset > (ulong)size || r.Length > (ulong)size - r.Offset =>
                $"{what} of {r.Length} bytes at offset {r.Offset} goes past the end of the export ({size} bytes)",
            _ => $"{what} with flags 0x{(ushort)r.Flags:x} is not valid here",
        };
    }
}
