using System.CommandLine;
using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.Formats;

namespace DiskSnapshotEngine.Cli;

/// <summary>
/// <c>--format F</c> of the verbs that make a new image (create, clone): the format of a path whose extension names
/// none, and a warning when the extension names another one (other tools go by the extension).
/// </summary>
internal static class FormatOption
{
    /// <summary>The names --format accepts.</summary>
    public static string[] Names => ImageFormats.All.Select(d => d.Name).ToArray();

    public static Option<string> Create(string what)
    {
        var names = Names;
        var option = new Option<string>("--format") { Description = $"Format of {what}: {string.Join(", ", names)}; by default the extension's.", HelpName = "F" };
        option.AcceptOnlyFromAmong(names);
        return option;
    }

    /// <summary>The format of the new image <paramref name="path"/>: the option's, else its extension's.</summary>
    /// <exception cref="DiskImageException">InvalidArgument when neither names a format.</exception>
    public static ImageFormat Resolve(CliContext context, Option<string> option, string path) => Resolve(context, context.Get(option), path);

    /// <summary>The format of the new image <paramref name="path"/>: <paramref name="name"/> (the option's value), else its extension's.</summary>
    /// <exception cref="DiskImageException">InvalidArgument when neither names a format.</exception>
    public static ImageFormat Resolve(CliContext context, string? name, string path)
    {
        var byExtension = ImageFormats.All.FirstOrDefault(d => d.Extensions.Contains(Path.GetExtension(path).ToLowerInvariant()));
        if (name is null)
            return byExtension?.Format ?? throw new DiskImageException(ErrorKind.InvalidArgument,
                $"cannot tell the format from the extension '{Path.GetExtension(path)}': give --format ({string.Join(", ", ImageFormats.All.Select(d => d.Name))}) " +
                $"or use one of {string.Join(", ", ImageFormats.All.SelectMany(d => d.Extensions))}", Path.GetFullPath(path));
        var format = ImageFormats.ByName(name).Format;
        if (byExtension is not null && byExtension.Format != format)
            context.Warn($"{Path.GetFullPath(path)} is a {name} image but its extension {Path.GetExtension(path)} names {byExtension.Name}: other programs (VirtualBox, Hyper-V, qemu-img without -f) go by the extension");
        return format;
    }
}
