namespace DiskSnapshotEngine.Errors;

/// <summary>
/// The one exception type of the engine: a <see cref="ErrorKind"/> plus the context a user needs to act
/// (which file, which on-disk structure, which file offset). <see cref="Exception.Message"/> is a single line.
/// </summary>
public sealed class DiskImageException : Exception
{
    /// <summary>A failure of <paramref name="kind"/>; the message is composed from the detail and the context given.</summary>
    /// <param name="kind">What kind of failure (it decides the CLI's exit code).</param>
    /// <param name="message">The detail, one line, without the file name (added from <paramref name="path"/>).</param>
    /// <param name="path">The file concerned, if any.</param>
    /// <param name="structure">The on-disk structure concerned, named as the format's specification names it.</param>
    /// <param name="fileOffset">The offset of that structure in the file.</param>
    /// <param name="inner">The operating-system or parser exception behind this one.</param>
    public DiskImageException(ErrorKind kind, string message, string? path = null, string? structure = null,
        long? fileOffset = null, Exception? inner = null)
        : base(Compose(message, path, structure, fileOffset), inner)
    {
        Kind = kind;
        Path = path;
        Structure = structure;
        FileOffset = fileOffset;
        Detail = message;
    }

    /// <summary>What kind of failure this is.</summary>
    public ErrorKind Kind { get; }

    /// <summary>The file the error is about, when there is one.</summary>
    public string? Path { get; }

    /// <summary>The on-disk structure (as the format specification names it), when there is one.</summary>
    public string? Structure { get; }

    /// <summary>The byte offset in <see cref="Path"/> of the offending structure or field, when known.</summary>
    public long? FileOffset { get; }

    /// <summary>The message without the file/structure/offset prefix.</summary>
    public string Detail { get; }

    /// <summary>
    /// The engine's error for an exception a .NET file API threw about <paramref name="path"/>: no space left is
    /// DiskFull, a held lock Locked, a missing file FileNotFound, a read-only file system ReadOnly, the rest Io.
    /// </summary>
    /// <param name="error">The exception an I/O call threw (a <see cref="DiskImageException"/> is returned as it is).</param>
    /// <param name="path">The file the call was about (named in the message).</param>
    /// <param name="operation">What was being done, in words ("read", "open the input").</param>
    public static DiskImageException FromOsError(Exception error, string path, string operation) =>
        IO.OsErrors.Translate(error, path, operation);

    private static string Compose(string message, string? path, string? structure, long? fileOffset)
    {
        var prefix = new System.Text.StringBuilder();
        if (path is not null) prefix.Append(path);
        if (structure is not null)
        {
            if (prefix.Length > 0) prefix.Append(": ");
            prefix.Append(structure);
        }
        if (fileOffset is long off)
        {
            prefix.Append(prefix.Length > 0 ? " " : "").Append("at offset ").Append(off).Append(" (0x").Append(off.ToString("x")).Append(')');
        }
        return prefix.Length == 0 ? message : $"{prefix}: {message}";
    }
}
