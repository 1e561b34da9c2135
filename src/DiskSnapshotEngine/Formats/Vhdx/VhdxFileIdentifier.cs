using System.Buffers.Binary;
using System.Text;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Formats.Vhdx;

/// <summary>MS-VHDX 2.2.1 File Type Identifier: signature "vhdxfile" and a UTF-16 creator string.</summary>
internal sealed class VhdxFileIdentifier
{
    public const ulong Signature = 0x656C696678646876; // "vhdxfile"
    public const int CreatorBytes = 512;

    public VhdxFileIdentifier(string creator) => Creator = creator;

    public string Creator { get; }

    public static bool HasSignature(ReadOnlySpan<byte> head) =>
        head.Length >= 8 && BinaryPrimitives.ReadUInt64LittleEndian(head) == Signature;

    public static VhdxFileIdentifier Read(IImageFile file)
    {
        Span<byte> buf = stackalloc byte[8 + CreatorBytes];
        file.ReadExactly(buf, VhdxConstants.FileIdentifierOffset, "file type identifier");
        if (!HasSignature(buf))
            ThrowHelper.InvalidFormat(file.Path, "file type identifier", 0, "signature is not \"vhdxfile\"");
        // UTF-16LE by the spec; decoded (not reinterpreted in place, whose generic cast each start would compile).
        string creator = Encoding.Unicode.GetString(buf.Slice(8, CreatorBytes));
        int nul = creator.IndexOf('\0', StringComparison.Ordinal);
        return new VhdxFileIdentifier(nul < 0 ? creator : creator[..nul]);
    }

    public void Write(Span<byte> target)
    {
        target[..(8 + CreatorBytes)].Clear();
        BinaryPrimitives.WriteUInt64LittleEndian(target, Signature);
        var bytes = Encoding.Unicode.GetBytes(Creator);
        bytes.AsSpan(0, Math.Min(bytes.Length, CreatorBytes - 2)).CopyTo(target[8..]);
    }
}
