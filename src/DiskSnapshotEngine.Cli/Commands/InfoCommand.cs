using System.CommandLine;
using DiskSnapshotEngine.Cli.Output;
using DiskSnapshotEngine.Errors;

namespace DiskSnapshotEngine.Cli.Commands;

/// <summary><c>dse info IMAGE [--chain] [--json] [--verbose]</c>: what an image is, and with --chain every layer down to the base.</summary>
internal static class InfoCommand
{
    public static Command Build()
    {
        var image = CommonOptions.Image();
        var chain = new Option<bool>("--chain") { Description = "Open the whole parent chain and show every layer, top to base." };
        var json = CommonOptions.Json();
        var command = new Command("info",
            "Show an image's format, type, sizes (virtual, allocated on disk, file), block and sector size, identity and parent; --verbose adds the format's own fields.")
        {
            image, chain, json,
        };
        var chainOptions = ChainOptions.AddTo(command, forceShare: true, internalSnapshot: true);

        VerbAction.Set(command, context =>
        {
            string path = context.Get(image)!;
            var open = chainOptions.ToOpenOptions(context, writable: false);
            if (context.Get(chain))
            {
                // The whole chain must open (parents found and verified) for --chain.
                using var opened = DiskImage.Open(path, open);
                var view = ChainView.Of(opened);
                if (context.Json) context.WriteJson(view);
                else view.WriteText(context.Out, context.Verbose);
                return ExitCodes.Ok;
            }
            var layerView = View(path, open, brief: !context.Json && !context.Verbose);
            if (context.Json) context.WriteJson(layerView);
            else layerView.WriteText(context.Out, context.Verbose);
            return ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>
    /// True for the plain form <c>info IMAGE</c> (no option; an image name that the parser would not read as an option,
    /// a response file or a directive): it runs through <see cref="RunPlain"/> without building the command tree.
    /// </summary>
    public static bool IsPlain(string[] args) =>
        args is ["info", var image] && image.Length > 0 && image[0] is not ('-' or '@' or '[');

    /// <summary>
    /// <c>info IMAGE</c> as the verb runs it with no option (text, one layer, the chain options' defaults), for the
    /// command a script runs most: start-up pays neither for the command tree nor for what only options show.
    /// </summary>
    public static int RunPlain(string path, TextWriter output)
    {
        View(path, new OpenOptions(), brief: true).WriteText(output, verbose: false);
        return ExitCodes.Ok;
    }

    // The parent's path is known only by finding it (a VDI names its parent by id alone): the chain is opened for
    // that, and when the parent cannot be found or verified the image is still shown, its parent as not found.
    private static LayerView View(string path, OpenOptions open, bool brief)
    {
        using var layer = DiskImage.OpenLayer(path, open);
        if (layer.ParentLink is null) return LayerView.Of(layer, brief: brief);
        try
        {
            using var chain = DiskImage.Open(path, open);
            var view = LayerView.Of(layer, chain.Layers.Count > 1 ? chain.Layers[1].Path : null, brief);
            // A child's minimum is what resize --shrink accepts: its parents' data it shows counts too.
            return brief ? view : view with { MinimumSize = Operations.Resize.MinimumSize(chain) };
        }
        catch (DiskImageException e) when (e.Kind is ErrorKind.ParentNotFound or ErrorKind.ParentMismatch or ErrorKind.ChainInvalid
                                            or ErrorKind.InvalidFormat or ErrorKind.CorruptImage or ErrorKind.Unsupported or ErrorKind.Locked or ErrorKind.FileNotFound)
        {
            return LayerView.Of(layer, brief: brief);
        }
    }
}
