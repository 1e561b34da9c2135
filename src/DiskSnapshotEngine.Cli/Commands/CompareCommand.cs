using System.CommandLine;
using DiskSnapshotEngine.Cli.Output;
using DiskSnapshotEngine.Operations;

namespace DiskSnapshotEngine.Cli.Commands;

/// <summary><c>dse compare A B</c>: exit 0 when both read the same, 1 with the first differing offset.</summary>
internal static class CompareCommand
{
    public static Command Build()
    {
        var a = new Argument<string>("A") { Description = "First image (any format, read through its chain; with --internal-snapshot, as it was at that snapshot)." };
        var b = new Argument<string>("B") { Description = "Second image." };
        var json = CommonOptions.Json();
        var command = new Command("compare", "Compare the content of two images; exit 0 when identical, 1 when they differ (with the first differing offset).")
        {
            a, b, json,
        };
        var chainOptions = ChainOptions.AddTo(command, forceShare: true, internalSnapshot: true);
        VerbAction.Set(command, async context =>
        {
            var open = chainOptions.ToOpenOptions(context, writable: false);
            // --internal-snapshot names a snapshot of A: B is read as it is.
            using var chainA = DiskImage.Open(context.Get(a)!, open);
            using var chainB = DiskImage.Open(context.Get(b)!, open with { InternalSnapshot = null });
            var result = await ProgressDisplay.RunAsync(context, "compare", p =>
                Task.FromResult(ImageCompare.Run(chainA, chainB, p, context.CancellationToken))).ConfigureAwait(false);
            context.Result(new CompareView([Path.GetFullPath(context.Get(a)!), Path.GetFullPath(context.Get(b)!)], result.Identical, result.FirstDifference, result.Reason),
                result.Identical ? "images are identical" : $"images differ: {result.Reason}");
            return result.Identical ? ExitCodes.Ok : ExitCodes.ProblemsFound;
        });
        return command;
    }

    /// <summary>The --json document of compare.</summary>
    internal sealed record CompareView(string[] Images, bool Identical, long? FirstDifference, string? Reason);
}
