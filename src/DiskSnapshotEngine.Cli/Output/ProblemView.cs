using DiskSnapshotEngine.Block;

namespace DiskSnapshotEngine.Cli.Output;

/// <summary>One finding of check or snapshot repair in the JSON schema (the layer's file is <c>image</c>, as everywhere).</summary>
internal sealed record ProblemView(CheckSeverity Severity, string Image, string Structure, long? FileOffset, string Message)
{
    public static IReadOnlyList<ProblemView> Of(IEnumerable<CheckProblem> problems) =>
        problems.Select(p => new ProblemView(p.Severity, p.Path, p.Structure, p.FileOffset, p.Message)).ToArray();
}
