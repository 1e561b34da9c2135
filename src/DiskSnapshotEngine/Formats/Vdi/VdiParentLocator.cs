using System.Buffers.Binary;
using System.Text;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Formats.Vdi;

/// <summary>
/// dse's parent locator in a differencing VDI: where the parent was when the child was linked, so the child reopens
/// from any working directory without a search path. VirtualBox keeps this in its media registry instead; the VDI
/// header names the parent only by identity (uuidLinkage), which stays the authority: a path found here is only a
/// candidate, accepted when the image there has that identity and version.
/// <code>
/// 512  char[8]  "dse-link"
/// 520  uint32   CRC-32C of the whole record, this field counted as zero
/// 524  uint16   RelativeLength   bytes of the path relative to the child's folder ('/' separators, UTF-8)
/// 526  uint16   AbsoluteLength   bytes of the absolute path (UTF-8)
/// 528  ...      relative path, then absolute path
/// </code>
/// It lives between the first sector and offBlocks, which no VirtualBox or qemu structure uses: VirtualBox (VDI.cpp)
/// reads and rewrites only the pre-header and header (bytes 0-471) and puts the blocks array at offBlocks, 1 MiB aligned
/// when it creates an image; qemu (block/vdi.c) reads and rewrites only the first sector. Both open and rewrite the
/// image exactly as before. It is written only where that gap holds it (every VDI dse creates puts offBlocks at 1 MiB).
/// </summary>
internal static class VdiParentLocator
{
    public const int Offset = 512;
    private const int HeaderSize = 16;
    private static ReadOnlySpan<byte> Magic => "dse-link"u8;

    /// <summary>The candidate paths the record names (relative first), or none when there is no valid record.</summary>
    public static IReadOnlyList<string> Read(IImageFile file, VdiHeader header)
    {
        long room = Room(header);
        if (room < HeaderSize) return Array.Empty<string>();
        Span<byte> head = stackalloc byte[HeaderSize];
        file.ReadOrZero(head, Offset);
        if (!head[..8].SequenceEqual(Magic)) return Array.Empty<string>();
        int relLength = BinaryPrimitives.ReadUInt16LittleEndian(head[12..]), absLength = BinaryPrimitives.ReadUInt16LittleEndian(head[14..]);
        if (HeaderSize + relLength + absLength > room) return Array.Empty<string>();
        var record = new byte[HeaderSize + relLength + absLength];
        file.ReadOrZero(record, Offset);
        // A torn or foreign record is no hint at all: the search by identity still finds the parent.
        if (BinaryPrimitives.ReadUInt32LittleEndian(record.AsSpan(8)) != Crc32C.ComputeWithZeroField(record, 8)) return Array.Empty<string>();
        var utf8 = new UTF8Encoding(false, throwOnInvalidBytes: true);
        try
        {
            string rel = utf8.GetString(record, HeaderSize, relLength), abs = utf8.GetString(record, HeaderSize + relLength, absLength);
            string childDir = System.IO.Path.GetDirectoryName(file.Path) ?? "/";
            var candidates = new List<string>();
            foreach (var p in new[] { rel.Length > 0 ? System.IO.Path.Combine(childDir, Local(rel)) : "", Local(abs) })
            {
                if (p.Length == 0 || p.AsSpan().IndexOfAny(System.IO.Path.GetInvalidPathChars()) >= 0 || !System.IO.Path.IsPathRooted(p)) continue;
                string full = System.IO.Path.GetFullPath(p);
                if (!candidates.Contains(full)) candidates.Add(full);
            }
            return candidates;
        }
        catch (DecoderFallbackException)
        {
            return Array.Empty<string>();
        }
    }

    /// <summary>
    /// Writes the record for a parent at <paramref name="parentPath"/> (not flushed: the caller orders it before the
    /// header). Where the gap cannot hold it, an older record is invalidated instead, so no stale hint remains.
    /// </summary>
    public static void Write(IImageFile file, VdiHeader header, string parentPath)
    {
        string full = System.IO.Path.GetFullPath(parentPath);
        string rel = ParentPath.Relative(file.Path, full) ?? ""; // another drive or file system: only the absolute path names it
        byte[] relBytes = Encoding.UTF8.GetBytes(rel.Replace(System.IO.Path.DirectorySeparatorChar, '/'));
        byte[] absBytes = Encoding.UTF8.GetBytes(full.Replace(System.IO.Path.DirectorySeparatorChar, '/'));
        long room = Room(header);
        if (room < HeaderSize) return;
        if (relBytes.Length > ushort.MaxValue || absBytes.Length > ushort.MaxValue || HeaderSize + relBytes.Length + absBytes.Length > room)
        {
            file.Write(new byte[Magic.Length], Offset);
            return;
        }
        var record = new byte[HeaderSize + relBytes.Length + absBytes.Length];
        Magic.CopyTo(record);
        BinaryPrimitives.WriteUInt16LittleEndian(record.AsSpan(12), (ushort)relBytes.Length);
        BinaryPrimitives.WriteUInt16LittleEndian(record.AsSpan(14), (ushort)absBytes.Length);
        relBytes.CopyTo(record, HeaderSize);
        absBytes.CopyTo(record, HeaderSize + relBytes.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(record.AsSpan(8), Crc32C.ComputeWithZeroField(record, 8));
        file.Write(record, Offset);
    }

    // Bytes from the locator's offset to the first VirtualBox structure after it (the blocks array or the data).
    private static long Room(VdiHeader header) =>
        header.IsVersion0 || header.CbHeader > VdiHeader.Header1PlusSize ? 0 : Math.Min(header.OffBlocks, header.OffData) - Offset;

    private static string Local(string stored) => stored.Replace('/', System.IO.Path.DirectorySeparatorChar);
}
