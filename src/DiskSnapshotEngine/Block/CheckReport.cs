namespace DiskSnapshotEngine.Block;

/// <summary>How serious a finding of <c>check</c> is.</summary>
public enum CheckSeverity
{
    /// <summary>Space allocated in the file that no map entry uses: harmless, reclaimed by compact.</summary>
    Leak,
    /// <summary>Unusual but readable.</summary>
    Warning,
    /// <summary>Content may read wrong: the image is corrupt.</summary>
    Error,
}

/// <summary>One finding of a check.</summary>
public sealed record CheckProblem(CheckSeverity Severity, string Path, string Structure, long? FileOffset, string Message)
{
    /// <inheritdoc />
    public override string ToString() =>
        $"{Severity.ToString().ToLowerInvariant()}: {Path}: {Structure}{(FileOffset is long o ? $" at offset {o} (0x{o:x})" : "")}: {Message}";
}

/// <summary>Result of checking one layer or a chain.</summary>
public sealed class CheckReport
{
    private readonly List<CheckProblem> _problems = new();

    /// <summary>Every finding, in the order found.</summary>
    public IReadOnlyList<CheckProblem> Problems => _problems;

    /// <summary>True when nothing at all was found.</summary>
    public bool IsClean => _problems.Count == 0;

    /// <summary>True when some finding is an error (leaks and warnings are not).</summary>
    public bool HasErrors => _problems.Any(p => p.Severity == CheckSeverity.Error);

    /// <summary>Adds a finding.</summary>
    public void Add(CheckSeverity severity, string path, string structure, long? fileOffset, string message) =>
        _problems.Add(new CheckProblem(severity, path, structure, fileOffset, message));

    /// <summary>Adds all findings of another report.</summary>
    public void AddRange(CheckReport other) => _problems.AddRange(other._problems);
}
