using System.CommandLine;
using DiskSnapshotEngine.Cli.Output;
using DiskSnapshotEngine.Operations;
using DiskSnapshotEngine.Snapshots;

namespace DiskSnapshotEngine.Cli.Commands;

/// <summary><c>dse detach IMAGE</c>: a linked clone becomes independent in place.</summary>
internal static class DetachCommand
{
    public static Command Build()
    {
        var image = CommonOptions.Image("A differencing VHDX or VDI image (a linked clone).");
        var json = CommonOptions.Json();
        var command = new Command("detach",
            "Make a linked clone independent in place: its parents' data is copied in and the parent link dropped (same path and identity; " +
            "the parents are only read). Crash-safe: run the same command again to finish an interrupted detach.")
        {
            image, json,
        };
        var chainOptions = ChainOptions.AddTo(command);
        VerbAction.Set(command, async context =>
        {
            var open = chainOptions.ToOpenOptions(context.Parse, writable: false);
            var result = await ProgressDisplay.RunAsync(context, "detach", show: !context.Get(json), p =>
                // A snapshot's layer leaves the current state's chain only through snapshot delete, which keeps the catalog right.
                Detach.RunAsync(context.Get(image)!, open, SnapshotMergeGuard.Instance, p, context.CancellationToken)).ConfigureAwait(false);
            // What was copied at the top, named as clone, merge and rebase name it (README "JSON output").
            if (context.Get(json))
                context.WriteJson(new DetachView(result.Image, result.FormerParents, result.Stats.BytesWritten, result.Stats.BytesZero));
            else if (result.FormerParents.Count == 0) context.Out.WriteLine($"{result.Image} has no parent: it is already independent");
            else context.Out.WriteLine($"detached {result.Image}: {SizeParser.Describe(result.Stats.BytesWritten)} copied in from {string.Join(" -> ", result.FormerParents)}; it is now a base image");
            return ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>The --json document of detach.</summary>
    internal sealed record DetachView(string Image, IReadOnlyList<string> FormerParents, long BytesWritten, long BytesZero);
}
