using System.CommandLine;

namespace DiskSnapshotEngine.Cli.Commands;

internal static class DemoCommand
{
    public static Command Build() => new("demo", "(not written yet)");
}
