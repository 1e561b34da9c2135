using System.CommandLine;
using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Formats;
using DiskSnapshotEngine.Operations;

namespace DiskSnapshotEngine.Cli.Commands;

/// <summary><c>dse measure SRC [--format F] [--type T] [--block-size B] [--json]</c>, like qemu-img measure.</summary>
internal static class MeasureCommand
{
    public static Command Build()
    {
        var source = new Argument<string>("SRC") { Description = "The image (its whole chain) a clone would be made of." };
        var names = ImageFormats.All.Select(d => d.Name).ToArray();
        var format = new Option<string>("--format") { Description = $"Format of the clone: {string.Join(", ", names)} (default: SRC's format)." };
        format.AcceptOnlyFromAmong(names);
        var type = new Option<string>("--type") { Description = "dynamic or fixed.", DefaultValueFactory = _ => "dynamic" };
        type.AcceptOnlyFromAmong(CreateCommand.TypeNames);
        var blockSize = SizeParser.Option("--block-size", "Allocation unit of the clone (the format's default when omitted).");
        var json = CommonOptions.Json();
        var command = new Command("measure",
            "Print the file size a full clone of SRC would take: for the data SRC holds now, and fully allocated (like qemu-img measure).")
        {
            source, format, type, blockSize, json,
        };
        var chainOptions = ChainOptions.AddTo(command, forceShare: true);
        VerbAction.Set(command, context =>
        {
            string src = context.Get(source)!;
            var open = chainOptions.ToOpenOptions(context, writable: false);
            ImageFormat fmt;
            if (context.Get(format) is string name) fmt = ImageFormats.ByName(name).Format;
            else using (var l = DiskImage.OpenLayer(src, writable: false, open.FileOpener)) fmt = l.Format;
            var t = context.Get(type) == "fixed" ? ImageType.Fixed : ImageType.Dynamic;
            var bs = context.Get(blockSize);
            var result = Measure.Run(src, fmt, t, bs is long b ? checked((int)b) : null, open);
            if (context.Get(json)) context.WriteJson(result);
            else
            {
                context.Out.WriteLine($"required size:        {result.Required}");
                context.Out.WriteLine($"fully allocated size: {result.FullyAllocated}");
            }
            return ExitCodes.Ok;
        });
        return command;
    }
}
