using System.CommandLine;
using DiskSnapshotEngine.Errors;

namespace DiskSnapshotEngine.Cli;

/// <summary>
/// How a verb finds the parents of the image it opens: the options every such verb shares, and the one function
/// that turns them into <see cref="OpenOptions"/>.
/// </summary>
internal sealed class ChainOptions
{
    private ChainOptions(Command command, bool forceShare, bool internalSnapshot)
    {
        SearchPaths = new Option<string[]>("--search-path")
        {
            Description = "A folder (or file) to search for parents that are found by identity (VDI children); repeatable.",
            HelpName = "DIR",
            Arity = ArgumentArity.OneOrMore,
        };
        VboxRegistries = new Option<string[]>("--vbox-registry")
        {
            Description = "A VirtualBox media registry (VirtualBox.xml or a .vbox file) whose media list tells where parents are; repeatable.",
            HelpName = "FILE",
            Arity = ArgumentArity.OneOrMore,
        };
        IgnoreParentMismatch = new Option<bool>("--ignore-parent-mismatch")
        {
            Description = "Expert: open the chain even when a parent changed since its child was linked (the child may read wrong data).",
        };
        command.Options.Add(SearchPaths);
        command.Options.Add(VboxRegistries);
        command.Options.Add(IgnoreParentMismatch);
        if (forceShare)
        {
            ForceShare = new Option<bool>("--force-share", "-U")
            {
                Description = "Read even while another process (dse, QEMU) writes the image, without taking its locks, like qemu-img -U; " +
                              "the content read may then be inconsistent.",
            };
            command.Options.Add(ForceShare);
        }
        if (internalSnapshot)
        {
            InternalSnapshot = new Option<string>("--internal-snapshot")
            {
                Description = "Read IMAGE (a qcow2) as it was at this internal snapshot, read-only: its id, or else its name (as qemu-img -s; 'dse info' lists them).",
                HelpName = "ID|NAME",
            };
            command.Options.Add(InternalSnapshot);
        }
    }

    public Option<string[]> SearchPaths { get; }
    public Option<string[]> VboxRegistries { get; }
    public Option<bool> IgnoreParentMismatch { get; }

    /// <summary>-U/--force-share, on the verbs that only read (info, map, export, compare, check); null elsewhere.</summary>
    public Option<bool>? ForceShare { get; }

    /// <summary>--internal-snapshot, on the verbs that can read a qcow2 internal snapshot of their (first) image; null elsewhere.</summary>
    public Option<string>? InternalSnapshot { get; }

    /// <summary>Adds the chain options to a verb that opens an existing image; <paramref name="forceShare"/> adds -U (read verbs only).</summary>
    /// <param name="command">The verb.</param>
    /// <param name="forceShare">Adds -U (read verbs only).</param>
    /// <param name="internalSnapshot">Adds --internal-snapshot (verbs that only read their image).</param>
    public static ChainOptions AddTo(Command command, bool forceShare = false, bool internalSnapshot = false) => new(command, forceShare, internalSnapshot);

    /// <summary>
    /// The open options, and with -U the one-line warning that the images are read without locks.
    /// </summary>
    public OpenOptions ToOpenOptions(CliContext context, bool writable)
    {
        var options = ToOpenOptions(context.Parse, writable);
        // A verb that only reads could have read a locked image with -U: its Locked error says so (ForceShareHint).
        context.OffersForceShare = ForceShare is not null && !writable && !options.ForceShare;
        if (options.ForceShare)
            context.Warn("--force-share: the images are read without locks; if another process is writing them, the content read may be inconsistent");
        return options;
    }

    /// <summary>The same chain options as arguments of another dse command (the <c>dse serve</c> a libvirt unit runs).</summary>
    public IReadOnlyList<string> ServeArguments(ParseResult parse)
    {
        var args = new List<string>();
        foreach (var p in parse.GetValue(SearchPaths) ?? Array.Empty<string>()) args.AddRange(["--search-path", Path.GetFullPath(p)]);
        foreach (var r in parse.GetValue(VboxRegistries) ?? Array.Empty<string>()) args.AddRange(["--vbox-registry", Path.GetFullPath(r)]);
        if (parse.GetValue(IgnoreParentMismatch)) args.Add("--ignore-parent-mismatch");
        return args;
    }

    /// <summary>The open options the command line asks for.</summary>
    /// <exception cref="DiskImageException">FileNotFound for a registry that does not exist; InvalidFormat for one that cannot be read.</exception>
    public OpenOptions ToOpenOptions(ParseResult parse, bool writable)
    {
        var registries = parse.GetValue(VboxRegistries) ?? Array.Empty<string>();
        var sources = new List<IParentLocationSource>();
        foreach (var registry in registries)
        {
            var full = Path.GetFullPath(registry);
            if (!File.Exists(full))
                throw new DiskImageException(ErrorKind.FileNotFound, "the VirtualBox registry does not exist", full);
            sources.Add(new DiskSnapshotEngine.Hypervisors.VirtualBox.VirtualBoxMediaRegistry(full));
        }
        return new OpenOptions
        {
            Writable = writable,
            SearchPaths = (parse.GetValue(SearchPaths) ?? Array.Empty<string>()).Select(Path.GetFullPath).ToArray(),
            LocationSources = sources,
            IgnoreParentMismatch = parse.GetValue(IgnoreParentMismatch),
            ForceShare = !writable && ForceShare is not null && parse.GetValue(ForceShare),
            InternalSnapshot = InternalSnapshot is null ? null : parse.GetValue(InternalSnapshot),
        };
    }
}

/// <summary>
/// The one place that suggests -U: a Locked error (another process, dse or QEMU, has the image open) of a verb that only
/// reads and takes -U, run without it, ends with how to read anyway. Verbs that write never suggest it.
/// </summary>
internal static class ForceShareHint
{
    /// <summary>The words added to the error, after "; ".</summary>
    public const string Text = "-U reads it anyway, as qemu-img -U does, without consistency guarantees";

    /// <summary><paramref name="e"/> with the hint when <paramref name="offered"/> and it is a Locked error; else <paramref name="e"/> itself.</summary>
    public static Exception Add(Exception e, bool offered) =>
        offered && e is DiskImageException { Kind: ErrorKind.Locked } d && !d.Detail.EndsWith(Text, StringComparison.Ordinal)
            ? new DiskImageException(d.Kind, $"{d.Detail}; {Text}", d.Path, d.Structure, d.FileOffset, d)
            : e;
}

/// <summary>Small options several verbs share (a fresh instance per verb).</summary>
internal static class CommonOptions
{
    public static Option<bool> Json() => new("--json") { Description = "Print the result as JSON (camelCase fields) instead of text." };

    public static Argument<string> Image(string description = "The image file (.vhdx, .avhdx, .vdi, .qcow2, .vhd, .img, .raw).") =>
        new("IMAGE") { Description = description };
}
