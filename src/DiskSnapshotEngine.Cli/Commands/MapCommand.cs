using System.CommandLine;
using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Operations;

namespace DiskSnapshotEngine.Cli.Commands;

/// <summary><c>dse map IMAGE [--json]</c>: the extents of the virtual disk and which layer holds them.</summary>
internal static class MapCommand
{
    public static Command Build()
    {
        var image = CommonOptions.Image("The image to map (through its chain).");
        var json = CommonOptions.Json();
        var command = new Command("map", "List the extents of the virtual disk: data, zero or absent, and which layer's file holds each.")
        {
            image, json,
        };
        var chainOptions = ChainOptions.AddTo(command, forceShare: true, internalSnapshot: true);
        VerbAction.Set(command, context =>
        {
            using var chain = DiskImage.Open(context.Get(image)!, chainOptions.ToOpenOptions(context, writable: false));
            if (context.Get(json))
            {
                // Streamed, one entry per line of the array, so memory stays flat on huge maps.
                context.Out.WriteLine("[");
                bool first = true;
                foreach (var e in ImageMap.Enumerate(chain))
                {
                    if (!first) context.Out.WriteLine(",");
                    first = false;
                    context.Out.Write("  " + Output.Json.OneLineOf(JsonEntry(e)));
                }
                context.Out.WriteLine();
                context.Out.WriteLine("]");
                return ExitCodes.Ok;
            }
            context.Out.WriteLine($"{"offset",18} {"length",18}  {"kind",-10} layer  file offset / file");
            foreach (var e in ImageMap.Enumerate(chain))
            {
                string kind = Output.Json.Word(e.Kind);
                string where = e.File is null ? "(reads as zeros)" : e.Kind == ExtentKind.Data ? $"{(e.FileOffset < 0 ? "(compressed)" : e.FileOffset)} {e.File}" : e.File;
                context.Out.WriteLine($"{e.Offset,18} {e.Length,18}  {kind,-10} {(e.LayerIndex < 0 ? "-" : e.LayerIndex.ToString()),5}  {where}");
            }
            return ExitCodes.Ok;
        });
        return command;
    }

    // The library's -1 ("no layer", "no plain file offset") is null here, as every absent value in the JSON output;
    // data without a file offset is stored encoded (the text's "(compressed)").
    private static EntryView JsonEntry(MapEntry e) => new(e.Offset, e.Length, e.Kind, e.LayerIndex < 0 ? null : e.LayerIndex, e.File,
        e.FileOffset < 0 ? null : e.FileOffset, e.Kind == ExtentKind.Data && e.File is not null && e.FileOffset < 0);

    /// <summary>One extent in map's --json array.</summary>
    internal sealed record EntryView(long Offset, long Length, ExtentKind Kind, int? LayerIndex, string? File, long? FileOffset, bool Compressed);
}
