using System.CommandLine;
using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Cli.Output;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.Hypervisors.Processes;
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
        var command = new Command("export", "Export the whole virtual disk (following the parent chain) as a raw image (for another format: clone).")
        {
            image, output, force, sync, noSync,
        };
        var chainOptions = ChainOptions.AddTo(command, forceShare: true, internalSnapshot: true);

        VerbAction.Set(command, context => Run(context, context.Get(image)!, context.Get(output)!, context.Get(force), context.Get(noSync),
            writable => chainOptions.ToOpenOptions(context, writable)));
        return command;
    }

    /// <summary><c>dse export IMAGE OUTPUT</c> with no option but --force, --sync, --no-sync and the common flags, without the parser.</summary>
    public static DirectRun? Direct(string[] args) =>
        DirectArgs.Read(args, 2, ["--force", "--sync", "--no-sync"], []) is { } a
            ? new DirectRun(a, context =>
            {
                context.OffersForceShare = true; // it reads only, without -U: a Locked error says how to read anyway
                return Run(context, a.Arguments[0], a.Arguments[1], a.Flag("--force"), a.Flag("--no-sync"), DirectRun.NoChainOptions);
            })
            : null;

    private static async Task<int> Run(CliContext context, string image, string target, bool force, bool noSync, Func<bool, OpenOptions> open)
    {
        RefuseImageExtension(image, target);
        using var chain = DiskImage.Open(image, open(false));
        if (target == "-")
        {
            context.Out.Flush();
            var stdout = context.Host.OpenStdout();
            await RawExport.ExportToStreamAsync(chain, stdout, null, context.CancellationToken).ConfigureAwait(false);
            return ExitCodes.Ok;
        }
        // Through a link the file written is its target: name that one.
        string written = await ProgressDisplay.RunAsync(context, "export", progress =>
            RawExport.ExportToFileAsync(chain, target, force, progress, !noSync, context.CancellationToken)).ConfigureAwait(false);
        context.Result(new ExportView(chain.Top.Path, written, "raw", chain.VirtualSize),
            $"exported {SizeParser.Describe(chain.VirtualSize)} to {written}");
        return ExitCodes.Ok;
    }

    // A raw file under an image extension would be taken for that format by every other program (and by dse itself
    // when its content happens to carry a signature); an image in a format is what clone makes.
    private static void RefuseImageExtension(string image, string target)
    {
        if (target == "-") return;
        var named = ImageFormats.All.FirstOrDefault(d => d.Format != ImageFormat.Raw && d.Extensions.Contains(Path.GetExtension(target).ToLowerInvariant()));
        if (named is null) return;
        // Clone never replaces a file (exit 16): over an existing one the hint says so rather than suggest a refused run.
        string clone = $"dse clone {ExternalCommand.ShellQuote(image)} {ExternalCommand.ShellQuote(target)}";
        string how = Path.Exists(target) || new FileInfo(target).LinkTarget is not null
            ? $"{clone} after removing {target} (clone does not replace a file), or name a new file"
            : clone;
        throw new DiskImageException(ErrorKind.InvalidArgument,
            $"export writes a raw disk, which must not be named {Path.GetExtension(target)}: to make a {named.Name} image use " +
            $"{how}; for a raw disk name it .img or .raw",
            Path.GetFullPath(target));
    }

    /// <summary>The --json document of export.</summary>
    internal sealed record ExportView(string Image, string Output, string Format, long VirtualSize);
}
