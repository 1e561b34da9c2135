using System.Diagnostics.CodeAnalysis;

namespace DiskSnapshotEngine.Errors;

/// <summary>
/// Throw sites kept out of hot paths so the callers stay small and inlinable.
/// </summary>
internal static class ThrowHelper
{
    [DoesNotReturn]
    public static void Corrupt(string path, string structure, long? fileOffset, string message) =>
        throw new DiskImageException(ErrorKind.CorruptImage, message, path, structure, fileOffset);

    [DoesNotReturn]
    public static T Corrupt<T>(string path, string structure, long? fileOffset, string message) =>
        throw new DiskImageException(ErrorKind.CorruptImage, message, path, structure, fileOffset);

    [DoesNotReturn]
    public static void InvalidFormat(string path, string structure, long? fileOffset, string message) =>
        throw new DiskImageException(ErrorKind.InvalidFormat, message, path, structure, fileOffset);

    [DoesNotReturn]
    public static void Unsupported(string path, string structure, long? fileOffset, string message) =>
        throw new DiskImageException(ErrorKind.Unsupported, message, path, structure, fileOffset);

    [DoesNotReturn]
    public static void OutOfBounds(string path, long offset, long length, long virtualSize) =>
        throw new DiskImageException(ErrorKind.OutOfBounds,
            $"range [{offset}, {offset + length}) is outside the virtual disk of {virtualSize} bytes", path);

    [DoesNotReturn]
    public static void ReadOnly(string path, string operation) =>
        throw new DiskImageException(ErrorKind.ReadOnly, $"cannot {operation}: the image is open read-only", path);

    [DoesNotReturn]
    public static void InvalidArgument(string message, string? path = null) =>
        throw new DiskImageException(ErrorKind.InvalidArgument, message, path);
}
