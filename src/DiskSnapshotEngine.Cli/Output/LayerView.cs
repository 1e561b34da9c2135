using DiskSnapshotEngine.Block;

namespace DiskSnapshotEngine.Cli.Output;

/// <summary>
/// What <c>info</c> shows of one image file. The JSON shape is part of the CLI's contract (README "JSON output"):
/// every fact once, camelCase, numbers as numbers; <see cref="Details"/> carries the format's own fields.
/// </summary>
internal sealed record LayerView(
    string Image,
    string Format,
    string Type,
    long VirtualSize,
    long? AllocatedSize,
    long FileSize,
    int BlockSize,
    int LogicalSectorSize,
    int PhysicalSectorSize,
    IdentityView? Identity,
    ParentLinkView? Parent,
    bool Sealed,
    IReadOnlyList<string> Seal,
    string? SoleChild,
    IReadOnlyDictionary<string, object> Details)
{
    // The driver's details keep the format's field names; the few that repeat a fact shown above are left out.
    private static readonly HashSet<string> s_shownAbove = new(StringComparer.OrdinalIgnoreCase)
    {
        "type", "virtual size", "block size", "logical sector size", "physical sector size", "file size",
    };

    // The details as the driver words them, for the text form (not serialized: private).
    private IReadOnlyList<KeyValuePair<string, string>> DetailText { get; init; } = [];

    /// <summary>What resize --shrink may go down to (Hyper-V's MinimumSize); null for an unreadable map, or a child whose chain did not open.</summary>
    public long? MinimumSize { get; init; }

    /// <summary>
    /// The view of <paramref name="layer"/>; <paramref name="parentImage"/> is the parent's file when the chain was opened.
    /// <paramref name="brief"/> leaves out what only JSON and <c>--verbose</c> show (the format's own fields and the
    /// minimum size), which costs a plain <c>info</c> more start-up time than all the rest.
    /// </summary>
    public static LayerView Of(IDiskLayer layer, string? parentImage = null, bool brief = false)
    {
        var details = brief ? [] : layer.Details.Where(d => !s_shownAbove.Contains(d.Key)).GroupBy(d => d.Key).Select(g => g.First()).ToArray();
        return new LayerView(
            layer.Path,
            layer.Format.ToString().ToLowerInvariant(),
            layer.Type.ToString().ToLowerInvariant(),
            layer.VirtualSize,
            DiskImage.AllocatedBytes(layer.Path),
            layer.File.Length,
            layer.BlockSize,
            layer.LogicalSectorSize,
            layer.PhysicalSectorSize,
            layer.Identity == default ? null : new IdentityView(layer.Identity.Id, layer.Identity.Version),
            ParentLinkView.Of(layer, parentImage),
            Seals.Of(layer) != SealReasons.None,
            Commands.SealCommand.Names(Seals.Of(layer)),
            Seals.SoleChildOf(layer) is { IsKnown: true } sole ? sole.ToString() : null,
            Json.Details(details))
        { DetailText = details, MinimumSize = brief ? null : MinimumSizeOf(layer) };
    }

    // A child's minimum depends on what its parents show (InfoCommand sets it from the opened chain); a map entry that
    // cannot be read leaves it unknown (check reports the entry).
    private static long? MinimumSizeOf(IDiskLayer layer)
    {
        if (layer.ParentLink is not null) return null;
        try { return Operations.Resize.MinimumSize(layer); }
        catch (Errors.DiskImageException) { return null; }
    }

    /// <summary>The image's path (the JSON calls it <c>image</c>).</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public string Path => Image;

    /// <summary>Human form without the format's own fields.</summary>
    public void WriteText(TextWriter w, string indent = "") => WriteText(w, verbose: false, indent);

    /// <summary>
    /// Human form: one aligned "name: value" line per fact, each fact once; the format's own fields and the
    /// versions only with <paramref name="verbose"/>.
    /// </summary>
    public void WriteText(TextWriter w, bool verbose, string indent = "")
    {
        var lines = new List<(string Name, string Value)>
        {
            ("image", Image),
            ("format", Format),
            ("type", Type),
            ("virtual size", SizeParser.Describe(VirtualSize)),
            ("disk size", AllocatedSize is long used ? SizeParser.Describe(used) : "unknown"),
            ("file size", SizeParser.Describe(FileSize)),
            ("block size", SizeParser.Describe(BlockSize)),
            ("sector size", LogicalSectorSize == PhysicalSectorSize ? $"{LogicalSectorSize}" : $"{LogicalSectorSize} logical, {PhysicalSectorSize} physical"),
        };
        if (MinimumSize is long min)
            lines.Insert(lines.FindIndex(l => l.Name == "virtual size") + 1, ("minimum size", SizeParser.Describe(min)));
        if (Identity is { } id)
        {
            lines.Add(("id", id.Id.ToString()));
            if (verbose) lines.Add(("version", id.Version.ToString()));
        }
        if (Parent is { } p)
        {
            string where = p.Image ?? "not found" + (p.CandidatePaths.Count > 0 ? $" at {p.CandidatePaths[0]}" : "") + " (open with --search-path or --vbox-registry)";
            lines.Add(("parent", p.ParentFormat is { } pf ? $"{where} ({pf})" : where));
            if (p.ParentId is Guid pid) lines.Add(("parent id", pid.ToString()));
            if (verbose)
            {
                lines.Add(($"parent {p.VersionName}", p.ParentVersion?.ToString() ?? "none recorded: the format names its parent by path only, so a changed parent cannot be detected"));
                if (p.AlternateParentVersion is Guid alt) lines.Add(("parent alternate", alt.ToString()));
                foreach (var c in p.CandidatePaths) lines.Add(("parent locator", c));
            }
        }
        else
        {
            lines.Add(("parent", "none (base image)"));
        }
        lines.Add(("sealed", Sealed ? $"yes: {string.Join(", ", Seal)} (no dse verb changes it until 'dse unseal')" : "no"));
        if (Sealed)
            lines.Add(("sole clone", SoleChild is { } c
                ? $"{c} (the only linked clone dse made of it: merging that one back needs no unseal)"
                : "unknown or several"));
        if (verbose)
            foreach (var (key, value) in DetailText) lines.Add(($"{Format} {key}", value));
        // A loop, not Max(selector): LINQ over this tuple type is not precompiled, and `info` would compile it at each start.
        int width = 0;
        foreach (var (name, _) in lines) width = Math.Max(width, name.Length);
        width += 2;
        foreach (var (name, value) in lines)
        {
            // Padding by hand: PadRight's vectorized fill is one more method compiled at start-up.
            var line = new System.Text.StringBuilder(indent, width + value.Length + indent.Length).Append(name).Append(':');
            while (line.Length < indent.Length + width) line.Append(' ');
            w.WriteLine(line.Append(value).ToString());
        }
    }
}

/// <summary>An image's identity (VHDX: virtual disk id and DataWriteGuid; VDI: uuidCreate and uuidModify).</summary>
internal sealed record IdentityView(Guid Id, Guid Version);

/// <summary>
/// How a differencing image names its parent; <see cref="Image"/> is the parent's file when it was found. The one shape of
/// <c>parent</c> in every verb's JSON (info, create --parent, clone --linked, reset, rebase).
/// </summary>
internal sealed record ParentLinkView(string? Image, IReadOnlyList<string> CandidatePaths, Guid? ParentId, Guid? ParentVersion,
    Guid? AlternateParentVersion, string VersionName, string? ParentFormat)
{
    /// <summary>The parent link <paramref name="layer"/> records (null for a base image); <paramref name="parentImage"/> is the parent's file when found.</summary>
    public static ParentLinkView? Of(IDiskLayer layer, string? parentImage) => layer.ParentLink is { } p
        ? new ParentLinkView(parentImage, p.CandidatePaths.Distinct(StringComparer.Ordinal).ToArray(), p.ParentId, p.ParentVersion,
            p.AlternateParentVersion, p.VersionName, p.ParentFormat?.ToString().ToLowerInvariant())
        : null;

    /// <summary>The parent link of the image file at <paramref name="image"/> once a verb linked it to <paramref name="parentImage"/>.</summary>
    public static ParentLinkView? Read(string image, string parentImage)
    {
        using var layer = DiskImage.OpenLayer(image, writable: false);
        return Of(layer, System.IO.Path.GetFullPath(parentImage));
    }
}

/// <summary>A whole chain, top first.</summary>
internal sealed record ChainView(string Image, long VirtualSize, IReadOnlyList<LayerView> Layers)
{
    public static ChainView Of(DiskChain chain) => new(chain.Top.Path, chain.VirtualSize,
        chain.Layers.Select((l, i) => LayerView.Of(l, i + 1 < chain.Layers.Count ? chain.Layers[i + 1].Path : null)).ToArray());

    public void WriteText(TextWriter w) => WriteText(w, verbose: false);

    public void WriteText(TextWriter w, bool verbose)
    {
        for (int i = 0; i < Layers.Count; i++)
        {
            w.WriteLine(i == 0 ? "layer 0 (top):" : i == Layers.Count - 1 ? $"layer {i} (base):" : $"layer {i}:");
            Layers[i].WriteText(w, verbose, "  ");
        }
    }
}
