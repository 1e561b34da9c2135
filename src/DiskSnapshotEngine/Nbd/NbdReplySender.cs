using System.Buffers;
using System.Buffers.Binary;
using System.Net.Sockets;
using DiskSnapshotEngine.Errors;

namespace DiskSnapshotEngine.Nbd;

/// <summary>
/// Sends the replies of one connection. Every reply is gathered as a list of segments (headers in a scratch buffer,
/// data in the pooled piece buffer it was read into) and handed to the socket in one gathering send (sendmsg with an
/// iovec per segment): no payload is copied and no buffer is allocated per request.
/// </summary>
internal sealed class NbdReplySender
{
    private const int MaxDescriptors = 1024;
    private readonly Socket _socket;
    private readonly NbdExport _export;
    private readonly ArrayPool<byte> _pool;
    private readonly bool _structured;
    private readonly byte[] _scratch = new byte[NbdExport.MaxRuns * NbdWire.HoleChunkSize + NbdWire.ChunkHeaderSize + 8 + MaxDescriptors * 8];
    private readonly NbdRun[] _runs = new NbdRun[NbdExport.MaxRuns];
    private readonly NbdExtent[] _extents = new NbdExtent[MaxDescriptors];
    private readonly List<ArraySegment<byte>> _segments = new(2 * NbdExport.MaxRuns + 2);

    public NbdReplySender(Socket socket, NbdExport export, ArrayPool<byte> pool, bool structured)
    {
        _socket = socket;
        _export = export;
        _pool = pool;
        _structured = structured;
    }

    /// <summary>The reply to a request without data: a simple reply on success, an error chunk with a message on failure when structured.</summary>
    public void Status(ulong handle, NbdError error, string? message)
    {
        if (error != NbdError.None && _structured)
        {
            int n = NbdWire.ErrorChunk(_scratch, handle, error, message ?? error.ToString());
            SendAll(_scratch.AsSpan(0, n));
            return;
        }
        NbdWire.SimpleReply(_scratch, error, handle);
        SendAll(_scratch.AsSpan(0, NbdWire.SimpleReplySize));
    }

    /// <summary>
    /// Answers a validated READ piece by piece. Structured: OFFSET_DATA and OFFSET_HOLE chunks (one data chunk with the
    /// zeros present when the client asked not to fragment), the last one flagged DONE. Simple: the header, then the bytes.
    /// </summary>
    /// <returns>False when the connection must be dropped: a read failed after a simple reply already promised the data.</returns>
    public bool Read(in NbdRequest r)
    {
        long offset = (long)r.Offset;
        int remaining = (int)r.Length;
        if (remaining == 0)
        {
            if (_structured) NbdWire.ChunkHeader(_scratch, NbdChunk.FlagDone, NbdChunk.None, r.Handle, 0);
            else NbdWire.SimpleReply(_scratch, NbdError.None, r.Handle);
            SendAll(_scratch.AsSpan(0, _structured ? NbdWire.ChunkHeaderSize : NbdWire.SimpleReplySize));
            return true;
        }
        bool fill = !_structured || (r.Flags & NbdCommandFlags.DontFragment) != 0;
        var data = _pool.Rent(Math.Min(remaining, NbdRequestRules.PieceSize));
        try
        {
            for (bool first = true; remaining > 0; first = false)
            {
                int n = Math.Min(remaining, NbdRequestRules.PieceSize);
                int runs;
                try { runs = _export.ReadPiece(offset, data.AsSpan(0, n), _runs, fill); }
                catch (DiskImageException e)
                {
                    // A structured reply can report the error after earlier chunks; a simple one only before its header.
                    if (!_structured && !first) return false;
                    Status(r.Handle, NbdExport.ErrorOf(e), e.Message);
                    return true;
                }
                _segments.Clear();
                int used = 0;
                if (!_structured)
                {
                    if (first)
                    {
                        NbdWire.SimpleReply(_scratch, NbdError.None, r.Handle);
                        used = AddScratch(0, NbdWire.SimpleReplySize);
                    }
                    _segments.Add(new ArraySegment<byte>(data, 0, n));
                }
                else
                {
                    for (int i = 0; i < runs; i++)
                    {
                        var run = _runs[i];
                        ushort flags = remaining == n && i == runs - 1 ? NbdChunk.FlagDone : (ushort)0;
                        ulong at = (ulong)(offset + run.Start);
                        if (run.IsHole)
                        {
                            NbdWire.HoleChunk(_scratch.AsSpan(used), flags, r.Handle, at, (uint)run.Length);
                            used = AddScratch(used, NbdWire.HoleChunkSize);
                        }
                        else
                        {
                            NbdWire.DataChunkHeader(_scratch.AsSpan(used), flags, r.Handle, at, run.Length);
                            used = AddScratch(used, NbdWire.DataChunkHeaderSize);
                            _segments.Add(new ArraySegment<byte>(data, run.Start, run.Length));
                        }
                    }
                }
                SendAll(_segments);
                offset += n;
                remaining -= n;
            }
        }
        finally { _pool.Return(data); }
        return true;
    }

    /// <summary>Answers a validated BLOCK_STATUS with one base:allocation chunk.</summary>
    public void BlockStatus(in NbdRequest r)
    {
        bool one = (r.Flags & NbdCommandFlags.ReqOne) != 0;
        int count;
        try { count = _export.BlockStatus((long)r.Offset, r.Length, _extents.AsSpan(0, one ? 1 : MaxDescriptors)); }
        catch (DiskImageException e)
        {
            Status(r.Handle, NbdExport.ErrorOf(e), e.Message);
            return;
        }
        int length = 4 + 8 * count;
        NbdWire.ChunkHeader(_scratch, NbdChunk.FlagDone, NbdChunk.BlockStatus, r.Handle, (uint)length);
        var body = _scratch.AsSpan(NbdWire.ChunkHeaderSize);
        BinaryPrimitives.WriteUInt32BigEndian(body, NbdMetaContext.BaseAllocationId);
        for (int i = 0; i < count; i++)
        {
            // With REQ_ONE the extent must not exceed the request; otherwise it already cannot (extents stay inside it).
            BinaryPrimitives.WriteUInt32BigEndian(body[(4 + 8 * i)..], Math.Min(_extents[i].Length, r.Length));
            BinaryPrimitives.WriteUInt32BigEndian(body[(8 + 8 * i)..], _extents[i].Flags);
        }
        SendAll(_scratch.AsSpan(0, NbdWire.ChunkHeaderSize + length));
    }

    /// <summary>Sends bytes of the handshake.</summary>
    public void SendAll(ReadOnlySpan<byte> bytes)
    {
        while (bytes.Length > 0) bytes = bytes[_socket.Send(bytes)..];
    }

    // Scratch headers written one after another become one segment while nothing else comes between them.
    private int AddScratch(int start, int length)
    {
        int last = _segments.Count - 1;
        if (last >= 0 && _segments[last].Array == _scratch && _segments[last].Offset + _segments[last].Count == start)
            _segments[last] = new ArraySegment<byte>(_scratch, _segments[last].Offset, _segments[last].Count + length);
        else
            _segments.Add(new ArraySegment<byte>(_scratch, start, length));
        return start + length;
    }

    private void SendAll(List<ArraySegment<byte>> segments)
    {
        long total = 0;
        foreach (var s in segments) total += s.Count;
        long sent = _socket.Send(segments);
        if (sent == total) return;
        // A blocking send may still stop early (a signal); send what is left segment by segment.
        foreach (var s in segments)
        {
            if (sent >= s.Count)
            {
                sent -= s.Count;
                continue;
            }
            SendAll(s.AsSpan((int)sent));
            sent = 0;
        }
    }
}
