using System.CommandLine;
using DiskSnapshotEngine.Cli.Output;
using DiskSnapshotEngine.Operations;

namespace DiskSnapshotEngine.Cli.Commands;

/// <summary><c>dse resize IMAGE --size S [--shrink]</c>.</summary>
internal static class ResizeCommand
{
    public static Command Build()
    {
        var image = CommonOptions.Image("A base image (VHDX, VDI, qcow2, VHD, raw) without children.");
        var size = SizeParser.Option("--size", "The new virtual size: bytes or with a K, M, G, T suffix (1G = 1024^3).");
        size.Required = true;
        var shrink = new Option<bool>("--shrink") { Description = "Allow a smaller size (refused when data lies beyond the new end)." };
        var json = CommonOptions.Json();
        var command = new Command("resize",
            "Change an image's virtual size (a base, or a differencing VHDX or qcow2), identity and content kept (a grown disk reads zeros past the old end). " +
            "Crash-safe: the old size or the new one.")
        {
            image, size, shrink, json,
        };
        var chainOptions = ChainOptions.AddTo(command);
        VerbAction.Set(command, async context =>
        {
            long bytes = context.Get(size)!.Value;
            var open = chainOptions.ToOpenOptions(context.Parse, writable: false);
            var result = await ProgressDisplay.RunAsync(context, "resize", show: !context.Get(json), p =>
                Resize.RunAsync(context.Get(image)!, bytes, context.Get(shrink), open, p, context.CancellationToken)).ConfigureAwait(false);
            if (context.Get(json)) context.WriteJson(result);
            else context.Out.WriteLine($"resized {result.Image}: {SizeParser.Describe(result.OldSize)} -> {SizeParser.Describe(result.NewSize)}" +
                (result.InPlace ? "" : " (rewritten beside itself and renamed over)"));
            return ExitCodes.Ok;
        });
        return command;
    }
}
