using System.CommandLine;
using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Cli.Output;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.Operations;
using DiskSnapshotEngine.Formats.Vhd;

namespace DiskSnapshotEngine.Cli.Commands;

/// <summary><c>dse create IMAGE --size SIZE</c> (a base image) or <c>dse create IMAGE --parent PARENT</c> (a differencing child).</summary>
internal static class CreateCommand
{
    public static Command Build()
    {
        var image = CommonOptions.Image("The image to create; the extension chooses the format (.vhdx, .avhdx, .vdi, .qcow2, .vhd, .img, .raw) unless --format. Never overwrites.");
        var format = FormatOption.Create("the new image");
        var size = SizeParser.Option("--size", "Virtual disk size: bytes or with a binary unit, as qemu-img and PowerShell count (10G = 10GB = 10GiB = 10 × 1024^3; 1.5G, 512MB, 1TiB). Required unless --parent.");
        var type = new Option<string>("--type")
        {
            Description = "dynamic (blocks allocated on first write; sparse raw) or fixed (all space allocated now).",
            DefaultValueFactory = _ => "dynamic",
        };
        type.AcceptOnlyFromAmong(TypeNames);
        var blockSize = SizeParser.Option("--block-size", "Allocation unit (VHDX payload block, VDI block, qcow2 cluster); the format's default when omitted.");
        var sector = new Option<int?>("--logical-sector-size") { Description = "Logical sector size of the virtual disk: 512 (default) or 4096." };
        sector.AcceptOnlyFromAmong(SectorSizeNames);
        var parent = new Option<string>("--parent")
        {
            Description = "Create a differencing child (linked clone) of this image instead; size and sector size come from it. The parent's content is not modified: it is sealed (dse seal) so that no dse verb changes it while the child reads through it.",
            HelpName = "PARENT",
        };
        var profile = AzureProfileOption.Create("azure: a fixed VHD as Azure takes it, the size rounded up to a whole number of MiB (said on stderr), the file that size plus its 512-byte footer.");
        var json = CommonOptions.Json();

        var command = new Command("create", "Create a new image: a base image of a given size, or a differencing child of a parent.")
        {
            image, size, type, blockSize, sector, parent, profile, format, json,
        };
        var geometry = new Option[] { size, type, blockSize, sector };
        command.Validators.Add(result =>
        {
            bool hasParent = result.GetResult(parent) is not null;
            foreach (string error in GeometryErrors(hasParent, name => result.GetResult(geometry.First(o => o.Name == name)) is { Implicit: false }))
                result.AddError(error);
            AzureProfileOption.Validate(result, profile, image,
                ("--parent", hasParent),
                ("--format " + result.GetValue(format), result.GetValue(format) is { } f && f != "vhd"),
                ("--type dynamic", result.GetResult(type) is { Implicit: false } && result.GetValue(type) != "fixed"),
                ("--block-size", result.GetResult(blockSize) is not null),
                ("--logical-sector-size 4096", result.GetValue(sector) == 4096));
        });

        VerbAction.Set(command, context => Run(context, new Request(context.Get(image)!, context.Get(format), context.Get(size),
            context.Get(type) == "fixed", context.Get(blockSize), context.Get(sector), context.Get(parent), context.Get(profile))));
        return command;
    }

    /// <summary>The values --type accepts (create, clone, measure).</summary>
    internal static readonly string[] TypeNames = ["dynamic", "fixed"];

    /// <summary>The values --logical-sector-size accepts.</summary>
    internal static readonly string[] SectorSizeNames = ["512", "4096"];

    private static readonly string[] s_geometry = ["--size", "--type", "--block-size", "--logical-sector-size"];

    /// <summary>
    /// The geometry rule, for the parser's validator and the direct run alike: a child takes its parent's geometry (no
    /// --size, --type, --block-size, --logical-sector-size with --parent); a base image needs --size.
    /// <paramref name="given"/> tells whether the user gave the option of that name.
    /// </summary>
    internal static IEnumerable<string> GeometryErrors(bool hasParent, Func<string, bool> given)
    {
        if (!hasParent)
        {
            if (!given("--size")) yield return "--size is required (or --parent to create a differencing child)";
            yield break;
        }
        foreach (string name in s_geometry)
            if (given(name)) yield return $"{name} cannot be combined with --parent (a child takes its parent's geometry)";
    }

    /// <summary>What a create is asked for: the values of its argument and options.</summary>
    internal sealed record Request(string Image, string? Format, long? Size, bool Fixed, long? BlockSize, int? SectorSize, string? Parent, string? Profile);

    /// <summary>
    /// <c>dse create IMAGE --size SIZE</c> with no option but --type, --block-size, --logical-sector-size, --format and
    /// the common flags, or <c>dse create IMAGE --parent PARENT</c> with no option but --format and the common flags,
    /// without the parser.
    /// </summary>
    public static DirectRun? Direct(string[] args)
    {
        if (DirectArgs.Read(args, 1, [], ["--size", "--type", "--block-size", "--logical-sector-size", "--format", "--parent"]) is not { } a ||
            GeometryErrors(a.Value("--parent") is not null, name => a.Value(name) is not null).Any() || !DirectRun.IsFormat(a.Value("--format")))
            return null;
        if (a.Value("--parent") is { } parent)
            return new DirectRun(a, context => Task.FromResult(Run(context, new Request(a.Arguments[0], a.Value("--format"), null, false, null, null, parent, Profile: null))));
        if (!DirectRun.TrySize(a.Value("--size"), out long? size) || !DirectRun.TrySize(a.Value("--block-size"), out long? blockSize) ||
            !DirectRun.IsOneOf(a.Value("--type"), TypeNames) || !DirectRun.IsOneOf(a.Value("--logical-sector-size"), SectorSizeNames))
            return null;
        int? sector = a.Value("--logical-sector-size") is { } s ? int.Parse(s, System.Globalization.CultureInfo.InvariantCulture) : null;
        return new DirectRun(a, context => Task.FromResult(Run(context, new Request(a.Arguments[0], a.Value("--format"), size,
            a.Value("--type") == "fixed", blockSize, sector, Parent: null, Profile: null))));
    }

    private static int Run(CliContext context, Request request)
    {
        string path = request.Image;
        IDiskLayer layer;
        string? parentImage = null;
        if (request.Parent is { } parentPath)
        {
            var parentSeal = LinkedClone.Create(parentPath, path, FormatOption.Resolve(context, request.Format, path));
            layer = DiskImage.OpenLayer(path, writable: false);
            parentImage = Path.GetFullPath(parentPath);
            SealCommand.WarnIfParentUnsealed(context, parentSeal);
            QemuBackingWarning.WarnIfQemuCannotFollow(context, path);
        }
        else if (request.Profile is not null)
        {
            long rounded = AzureProfileOption.Round(context, request.Size!.Value);
            layer = DiskImage.Create(path, AzureVhdProfile.CreateOptions(rounded, path), ImageFormat.Vhd);
        }
        else
        {
            var options = new ImageCreateOptions(
                request.Size!.Value,
                request.Fixed ? ImageType.Fixed : ImageType.Dynamic,
                request.BlockSize is long bs ? checked((int)Math.Min(bs, int.MaxValue)) : null,
                request.SectorSize ?? 512);
            layer = DiskImage.Create(path, options, FormatOption.Resolve(context, request.Format, path));
        }
        using (layer)
        {
            layer.Flush();
            var view = LayerView.Of(layer, parentImage);
            if (context.Json) context.WriteJson(view);
            else
            {
                context.Out.WriteLine($"created {view.Image}");
                view.WriteText(context.Out, context.Verbose, "  ");
            }
        }
        return ExitCodes.Ok;
    }
}
