using DiskSnapshotEngine.Errors;

namespace DiskSnapshotEngine.IO;

/// <summary>Helpers over <see cref="IImageFile"/> shared by every driver.</summary>
internal static class ImageFileExtensions
{
    /// <summary>
    /// Reads exactly <paramref name="buffer"/>.Length bytes; a short read means the structure lies past the end
    /// of the file, which is reported as corruption of <paramref name="structure"/>.
    /// </summary>
    public static void ReadExactly(this IImageFile file, Span<byte> buffer, long fileOffset, string structure)
    {
        if (fileOffset < 0)
            ThrowHelper.Corrupt(file.Path, structure, fileOffset, "negative file offset");
        int done = 0;
        while (done < buffer.Length)
        {
            int n = file.Read(buffer[done..], fileOffset + done);
            if (n <= 0)
                ThrowHelper.Corrupt(file.Path, structure, fileOffset,
                    $"needs {buffer.Length} bytes but the file ends at {file.Length}");
            done += n;
        }
    }

    /// <summary>Grows the file with its space reserved when the file supports it (a real file), otherwise sparsely.</summary>
    public static void Reserve(this IImageFile file, long length)
    {
        if (file is ImageFile real) real.Reserve(length);
        else if (length > file.Length) file.SetLength(length);
    }

    /// <summary>Reads what the file holds at the offset and zero-fills any part past its end (sparse tails, preallocated images).</summary>
    public static void ReadOrZero(this IImageFile file, Span<byte> buffer, long fileOffset)
    {
        int done = 0;
        while (done < buffer.Length)
        {
            int n = file.Read(buffer[done..], fileOffset + done);
            if (n <= 0) break;
            done += n;
        }
        buffer[done..].Clear();
    }
}
