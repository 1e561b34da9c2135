using System.IO.Compression;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Formats.Qcow2;

/// <summary>
/// qcow2.txt "Compressed Clusters Descriptor" and header compression_type: a compressed cluster is a raw deflate
/// stream (type 0, zlib without its header) or zstd frames (type 1) that must produce exactly one cluster; the
/// bytes after it, up to the end of the last sector, are ignored. The last cluster decoded is kept, since reads
/// of a compressed cluster usually come in several pieces.
/// </summary>
internal sealed class Qcow2Compression
{
    private readonly IImageFile _file;
    private readonly Qcow2Geometry _g;
    private readonly byte _type;
    private readonly byte[] _cluster;
    private ulong _cachedEntry;
    private bool _cached;

    public Qcow2Compression(IImageFile file, Qcow2Geometry geometry, byte compressionType)
    {
        _file = file;
        _g = geometry;
        _type = compressionType;
        _cluster = new byte[geometry.ClusterSize];
    }

    public string TypeName => _type == 0 ? "zlib" : "zstd";

    /// <summary>The decoded cluster of a compressed L2 entry (valid until the next call). The caller holds the layer's lock.</summary>
    /// <exception cref="DiskImageException">CorruptImage when the data does not decode to one cluster.</exception>
    public ReadOnlySpan<byte> Decode(Qcow2L2Entry entry, long? entryOffset)
    {
        if (_cached && _cachedEntry == entry.Entry) return _cluster;
        _cached = false;
        var (offset, length) = entry.CompressedRange(_g.ClusterBits);
        if (offset >= _file.Length)
            ThrowHelper.Corrupt(_g.Path, "L2 table", entryOffset, $"compressed cluster data at {offset} lies past the end of the file at {_file.Length}");
        var input = new byte[length];
        // The last sector of the last compressed cluster may be cut short by the end of the file; it reads as zeros.
        _file.ReadOrZero(input, offset);
        int produced;
        try
        {
            using var source = new MemoryStream(input, writable: false);
            using Stream decoder = _type == 0
                ? new DeflateStream(source, CompressionMode.Decompress)
                : new ZstdSharp.DecompressionStream(source, checkEndOfStream: false);
            produced = 0;
            while (produced < _cluster.Length)
            {
                int n = decoder.Read(_cluster, produced, _cluster.Length - produced);
                if (n <= 0) break;
                produced += n;
            }
        }
        catch (Exception e) when (e is InvalidDataException or IOException or ZstdSharp.ZstdException or ArgumentException)
        {
            throw new DiskImageException(ErrorKind.CorruptImage, $"compressed cluster at {offset} (+{length}) does not decode as {TypeName}: {e.Message}",
                _g.Path, "compressed cluster", entryOffset, e);
        }
        if (produced < _cluster.Length)
            ThrowHelper.Corrupt(_g.Path, "compressed cluster", entryOffset,
                $"compressed cluster at {offset} (+{length}) decodes to {produced} bytes instead of a {_cluster.Length}-byte cluster");
        _cachedEntry = entry.Entry;
        _cached = true;
        return _cluster;
    }
}
