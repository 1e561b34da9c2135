using System.CommandLine;
using DiskSnapshotEngine.Formats.Vhd;

namespace DiskSnapshotEngine.Cli;

/// <summary>
/// <c>--profile azure</c> on create, clone and check: the disk as Azure takes it (a fixed VHD of a whole number of MiB,
/// footer only; see <see cref="AzureVhdProfile"/>).
/// </summary>
internal static class AzureProfileOption
{
    public const string Azure = "azure";

    public static Option<string> Create(string description)
    {
        var option = new Option<string>("--profile") { Description = description, HelpName = "azure" };
        option.AcceptOnlyFromAmong(Azure);
        return option;
    }

    /// <summary>Adds the usage errors of a profiled command: the output must be a .vhd and no option may contradict the profile.</summary>
    public static void Validate(System.CommandLine.Parsing.CommandResult result, Option<string> profile, Argument<string> output,
        params (string Name, bool Conflicts)[] options)
    {
        if (result.GetResult(profile) is null) return;
        if (result.GetValue(output) is { } path && !string.Equals(Path.GetExtension(path), ".vhd", StringComparison.OrdinalIgnoreCase))
            result.AddError("--profile azure writes a fixed VHD: name the new image .vhd");
        foreach (var (name, conflicts) in options)
            if (conflicts) result.AddError($"{name} cannot be combined with --profile azure (Azure takes a fixed VHD of 512-byte sectors)");
    }

    /// <summary>The size Azure takes for <paramref name="size"/>, saying so on stderr when it had to be rounded up.</summary>
    public static long Round(CliContext context, long size)
    {
        long rounded = AzureVhdProfile.RoundUp(size);
        if (rounded != size)
            context.Note($"virtual size rounded up from {size} bytes to {SizeParser.Describe(rounded)}: Azure takes a whole number of MiB");
        return rounded;
    }
}
