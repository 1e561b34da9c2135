using System.CommandLine;
using DiskSnapshotEngine.Cli.Output;
using DiskSnapshotEngine.Operations;

namespace DiskSnapshotEngine.Cli.Commands;

/// <summary><c>dse export IMAGE OUTPUT</c>: the whole virtual disk, through the chain, as a raw file (sparse) or to stdout.</summary>
internal static class ExportCommand
{
    public static Command Build()
    {
        var image = CommonOptions.Image("The image to export (with its parents).");
        var output = new Argument<string>("OUTPUT") { Description = "The raw file to create (holes left sparse), or - for stdout (holes written as zeros)." };
        var force = new Option<bool>("--force") { Description = "Replace OUTPUT when it exists (never one of the chain's own files)." };
        var sync = new Option<bool>("--sync") { Description = "The default, kept for scripts: OUTPUT is on disk (fsync) before it gets its name and dse exits." };
        var noSync = new Option<bool>("--no-sync") { Description = "Do not fsync OUTPUT (as cp and qemu-img): faster, but a power loss or kernel crash soon after may leave OUTPUT incomplete; the image is never at risk." };
        var command = new Command("export", "Export the whole virtual disk (following the parent chain) as a raw image.")
        {
            image, output, force, sync, noSync,
        };
        var chainOptions = ChainOptions.AddTo(command, forceShare: true);

        VerbAction.Set(command, async context =>
        {
            string target = context.Get(output)!;
            using var chain = DiskImage.Open(context.Get(image)!, chainOptions.ToOpenOptions(context, writable: false));
            if (target == "-")
            {
                context.Out.Flush();
                var stdout = context.Host.OpenStdout();
                await RawExport.ExportToStreamAsync(chain, stdout, null, context.CancellationToken).ConfigureAwait(false);
                return ExitCodes.Ok;
            }
            await ProgressDisplay.RunAsync(context, "export", show: true, progress =>
                RawExport.ExportToFileAsync(chain, target, context.Get(force), progress, context.CancellationToken, durable: !context.Get(noSync))).ConfigureAwait(false);
            context.Out.WriteLine($"exported {SizeParser.Describe(chain.VirtualSize)} to {Path.GetFullPath(target)}");
            return ExitCodes.Ok;
        });
        return command;
    }
}
