using System.Net.Sockets;

namespace DiskSnapshotEngine.Nbd;

/// <summary>
/// Exact-length reads from a connected socket through a small buffer, so a burst of request headers costs one system
/// call; a payload larger than what is buffered is received straight into its destination. Every read reports the
/// end of the stream (the client went away, or the server shut the receive side to stop) as false, never a short read.
/// </summary>
internal sealed class NbdReceiver(Socket socket)
{
    private readonly byte[] _buffer = new byte[64 << 10];
    private int _start, _end;

    /// <summary>Fills <paramref name="to"/> entirely; false when the stream ended first.</summary>
    public bool ReadExact(Span<byte> to)
    {
        int buffered = Math.Min(_end - _start, to.Length);
        _buffer.AsSpan(_start, buffered).CopyTo(to);
        _start += buffered;
        to = to[buffered..];
        while (to.Length > 0)
        {
            if (to.Length >= _buffer.Length)
            {
                int n = socket.Receive(to);
                if (n <= 0) return false;
                to = to[n..];
                continue;
            }
            if (!Fill()) return false;
            int take = Math.Min(_end - _start, to.Length);
            _buffer.AsSpan(_start, take).CopyTo(to);
            _start += take;
            to = to[take..];
        }
        return true;
    }

    /// <summary>Reads and drops <paramref name="count"/> bytes (the payload of a refused write); false when the stream ended first.</summary>
    public bool Skip(long count)
    {
        while (count > 0)
        {
            if (_start == _end && !Fill()) return false;
            int take = (int)Math.Min(_end - _start, count);
            _start += take;
            count -= take;
        }
        return true;
    }

    private bool Fill()
    {
        _start = 0;
        _end = socket.Receive(_buffer);
        if (_end > 0) return true;
        _end = 0;
        return false;
    }
}
