using System.CommandLine;

namespace DiskSnapshotEngine.Cli.Commands;

internal static class WriteCommand
{
    public static Command Build() => new("write", "(not written yet)");
}
