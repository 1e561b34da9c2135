using System.CommandLine;
using DiskSnapshotEngine.Cli.Output;

namespace DiskSnapshotEngine.Cli.Commands;

/// <summary><c>dse info IMAGE [--chain] [--json]</c>: what an image is, and with --chain every layer down to the base.</summary>
internal static class InfoCommand
{
    public static Command Build()
    {
        var image = CommonOptions.Image();
        var chain = new Option<bool>("--chain") { Description = "Open the whole parent chain and show every layer, top to base." };
        var json = CommonOptions.Json();
        var command = new Command("info", "Show an image's format, type, sizes, identity, parent link and format details.")
        {
            image, chain, json,
        };
        var chainOptions = ChainOptions.AddTo(command, forceShare: true);

        VerbAction.Set(command, context =>
        {
            string path = context.Get(image)!;
            var open = chainOptions.ToOpenOptions(context, writable: false);
            if (context.Get(chain))
            {
                // The whole chain must open (parents found and verified) for --chain; without it only this file is read.
                using var opened = DiskImage.Open(path, open);
                var view = ChainView.Of(opened);
                if (context.Get(json)) context.WriteJson(view);
                else view.WriteText(context.Out);
            }
            else
            {
                using var layer = DiskImage.OpenLayer(path, writable: false, open.FileOpener);
                var view = LayerView.Of(layer);
                if (context.Get(json)) context.WriteJson(view);
                else view.WriteText(context.Out);
            }
            return ExitCodes.Ok;
        });
        return command;
    }
}
