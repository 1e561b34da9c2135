using System.CommandLine;
using DiskSnapshotEngine.Cli.Output;
using DiskSnapshotEngine.Operations;

namespace DiskSnapshotEngine.Cli.Commands;

/// <summary><c>dse reset CLONE</c>: discard a linked clone's own writes in constant time.</summary>
internal static class ResetCommand
{
    public static Command Build()
    {
        var image = CommonOptions.Image("The linked clone (a differencing image) to reset to its parent's content.");
        var json = CommonOptions.Json();
        var command = new Command("reset",
            "Throw away a linked clone's own writes in constant time: it reads as its parent again, same path, disk id and parent link. " +
            "Refused on a base image, on a clone other images read through and on a sealed clone.")
        {
            image, json,
        };
        var chainOptions = ChainOptions.AddTo(command);
        VerbAction.Set(command, context =>
        {
            var result = Reset.Run(context.Get(image)!, chainOptions.ToOpenOptions(context.Parse, writable: false));
            // The parent as info shows it (one shape wherever a verb names a parent), not the library record's path.
            if (context.Get(json))
                context.WriteJson(new ResetView(result.Image, ParentLinkView.Read(result.Image, result.Parent), result.SizeBefore, result.SizeAfter));
            else context.Out.WriteLine($"reset {result.Image}: it reads as {result.Parent} again ({SizeParser.Describe(result.SizeBefore)} -> {SizeParser.Describe(result.SizeAfter)})");
            return ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>The --json document of reset.</summary>
    internal sealed record ResetView(string Image, ParentLinkView? Parent, long SizeBefore, long SizeAfter);
}
