using System.CommandLine;
using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Cli.Output;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.Formats.Vhd;
using DiskSnapshotEngine.Operations;

namespace DiskSnapshotEngine.Cli.Commands;

/// <summary><c>dse clone SRC DST [--format F] [--type T] [--block-size S]</c> (full clone) or <c>dse clone --linked PARENT IMAGE</c>.</summary>
internal static class CloneCommand
{
    public static Command Build()
    {
        var src = new Argument<string>("SRC") { Description = "The image to clone (its whole chain is flattened); with --linked, the parent." };
        var dst = new Argument<string>("DST") { Description = "The new image; never overwritten. Its extension chooses the format unless --format." };
        var format = FormatOption.Create("the clone");
        var type = new Option<string>("--type") { Description = "dynamic (only data allocated) or fixed.", DefaultValueFactory = _ => "dynamic" };
        type.AcceptOnlyFromAmong(CreateCommand.TypeNames);
        var blockSize = SizeParser.Option("--block-size", "Allocation unit of the clone (the format's default when omitted).");
        var linked = new Option<bool>("--linked") { Description = "Make a linked clone: an empty differencing child of SRC (constant time)." };
        var profile = AzureProfileOption.Create("azure: the clone as Azure takes it, a fixed VHD whose size is the source's rounded up to a whole number of MiB (said on stderr; the added tail reads as zeros).");
        var noSync = new Option<bool>("--no-sync") { Description = "Do not fsync the clone before it gets its name (as cp and qemu-img convert): faster, but a power loss or kernel crash soon after may leave it incomplete; the source is never at risk." };
        var json = CommonOptions.Json();
        var command = new Command("clone", "Full clone (flatten a chain into one independent image, any format to any format) or linked clone (--linked).")
        {
            src, dst, format, type, blockSize, linked, profile, noSync, json,
        };
        var chainOptions = ChainOptions.AddTo(command, internalSnapshot: true);
        command.Validators.Add(r =>
        {
            if (r.GetValue(linked) && chainOptions.InternalSnapshot is { } snapshot && r.GetResult(snapshot) is not null)
                r.AddError("--internal-snapshot does not apply to a linked clone (it would read the image's current state): make a full clone of the snapshot");
            if (LinkedGeometryError(r.GetResult(linked) is { Implicit: false }, r.GetResult(type) is { Implicit: false }, r.GetResult(blockSize) is not null) is { } error)
                r.AddError(error);
            AzureProfileOption.Validate(r, profile, dst,
                ("--linked", r.GetValue(linked)),
                ("--format " + r.GetValue(format), r.GetValue(format) is { } f && f != "vhd"),
                ("--type dynamic", r.GetResult(type) is { Implicit: false } && r.GetValue(type) != "fixed"),
                ("--block-size", r.GetResult(blockSize) is not null));
        });

        VerbAction.Set(command, context => Run(context, new Request(context.Get(src)!, context.Get(dst)!, context.Get(format),
            context.Get(type) == "fixed", context.Get(blockSize), context.Get(linked), context.Get(profile), context.Get(noSync),
            writable => chainOptions.ToOpenOptions(context.Parse, writable))));
        return command;
    }

    /// <summary>The rule, for the parser's validator and the direct run alike: a linked clone takes its parent's geometry (no --type, no --block-size).</summary>
    internal static string? LinkedGeometryError(bool linked, bool typeGiven, bool blockSizeGiven) =>
        linked && (typeGiven || blockSizeGiven) ? "--type and --block-size do not apply to a linked clone (it takes its parent's geometry)" : null;

    /// <summary>What a clone is asked for: the values of its arguments and options, the chain options when needed.</summary>
    internal sealed record Request(string Source, string Destination, string? Format, bool Fixed, long? BlockSize, bool Linked,
        string? Profile, bool NoSync, Func<bool, OpenOptions> Open);

    /// <summary>
    /// <c>dse clone SRC DST</c> with no option but --format, --type, --block-size, --linked (without --type and
    /// --block-size, which the parser refuses with it), --no-sync and the common flags, without the parser.
    /// </summary>
    public static DirectRun? Direct(string[] args)
    {
        if (DirectArgs.Read(args, 2, ["--no-sync", "--linked"], ["--format", "--type", "--block-size"]) is not { } a ||
            !DirectRun.IsFormat(a.Value("--format")) || !DirectRun.IsOneOf(a.Value("--type"), CreateCommand.TypeNames) ||
            !DirectRun.TrySize(a.Value("--block-size"), out long? blockSize) ||
            LinkedGeometryError(a.Flag("--linked"), a.Value("--type") is not null, a.Value("--block-size") is not null) is not null)
            return null;
        return new DirectRun(a, context => Run(context, new Request(a.Arguments[0], a.Arguments[1], a.Value("--format"),
            a.Value("--type") == "fixed", blockSize, a.Flag("--linked"), Profile: null, a.Flag("--no-sync"), DirectRun.NoChainOptions)));
    }

    private static async Task<int> Run(CliContext context, Request request)
    {
        string source = request.Source, destination = request.Destination;
        ImageFormat? fmt = request.Profile is null ? FormatOption.Resolve(context, request.Format, destination) : null;
        string image = Path.GetFullPath(destination), from = Path.GetFullPath(source);
        if (request.Linked)
        {
            SealCommand.WarnIfParentUnsealed(context, LinkedClone.Create(source, destination, fmt));
            QemuBackingWarning.WarnIfQemuCannotFollow(context, destination);
            context.Result(() => new CloneView(image, from, Linked: true, Output.ParentLinkView.Read(image, from), 0, 0),
                $"created linked clone {image} of {from}");
            return ExitCodes.Ok;
        }
        var open = request.Open(false);
        var options = new CloneOptions(fmt, request.Fixed ? ImageType.Fixed : ImageType.Dynamic,
            request.BlockSize is long bs ? checked((int)bs) : null)
        { Open = open, Durable = !request.NoSync };
        if (request.Profile is not null)
        {
            long size;
            using (var chain = DiskImage.Open(source, open)) size = chain.VirtualSize;
            long rounded = AzureProfileOption.Round(context, size);
            AzureVhdProfile.CreateOptions(rounded, Path.GetFullPath(destination));
            options = options with { Format = ImageFormat.Vhd, Type = ImageType.Fixed, VirtualSize = rounded };
        }
        var stats = await ProgressDisplay.RunAsync(context, "clone", p =>
            FullClone.RunAsync(source, destination, options, p, context.CancellationToken)).ConfigureAwait(false);
        context.Result(new CloneView(image, from, Linked: false, Parent: null, stats.BytesWritten, stats.BytesZero),
            $"cloned {from} to {image}: {SizeParser.Describe(stats.BytesWritten)} written, {SizeParser.Describe(stats.BytesZero)} of zero data skipped");
        return ExitCodes.Ok;
    }

    /// <summary>The --json document of clone.</summary>
    internal sealed record CloneView(string Image, string Source, bool Linked, Output.ParentLinkView? Parent, long BytesWritten, long BytesZero);
}
