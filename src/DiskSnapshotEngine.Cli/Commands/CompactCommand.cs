using System.CommandLine;
using DiskSnapshotEngine.Cli.Output;
using DiskSnapshotEngine.Operations;

namespace DiskSnapshotEngine.Cli.Commands;

/// <summary><c>dse compact IMAGE</c>.</summary>
internal static class CompactCommand
{
    public static Command Build()
    {
        var image = CommonOptions.Image("A dynamic or differencing VHDX, VDI or VHD image.");
        var json = CommonOptions.Json();
        var command = new Command("compact",
            "Give back blocks that read as zeros and unused space: the image is rewritten beside itself (same identity and parent link) and atomically renamed over the original.")
        {
            image, json,
        };
        var chainOptions = ChainOptions.AddTo(command);
        VerbAction.Set(command, async context =>
        {
            var open = chainOptions.ToOpenOptions(context.Parse, writable: false);
            var result = await ProgressDisplay.RunAsync(context, "compact", p =>
                Compact.RunAsync(context.Get(image)!, open, p, context.CancellationToken)).ConfigureAwait(false);
            context.Result(new CompactView(Path.GetFullPath(context.Get(image)!), result.SizeBefore, result.SizeAfter, result.Stats.BytesWritten, result.Stats.BytesZero),
                $"compacted {Path.GetFullPath(context.Get(image)!)}: {SizeParser.Describe(result.SizeBefore)} -> {SizeParser.Describe(result.SizeAfter)}");
            return ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>The --json document of compact.</summary>
    internal sealed record CompactView(string Image, long SizeBefore, long SizeAfter, long BytesWritten, long BytesZero);
}
