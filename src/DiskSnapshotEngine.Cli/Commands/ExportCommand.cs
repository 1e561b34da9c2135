using System.CommandLine;

namespace DiskSnapshotEngine.Cli.Commands;

internal static class ExportCommand
{
    public static Command Build() => new("export", "(not written yet)");
}
