using System.CommandLine;

namespace DiskSnapshotEngine.Cli.Commands;

internal static class CheckCommand
{
    public static Command Build() => new("check", "(not written yet)");
}
