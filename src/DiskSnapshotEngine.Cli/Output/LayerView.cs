using DiskSnapshotEngine.Block;

namespace DiskSnapshotEngine.Cli.Output;

/// <summary>What <c>info</c> shows of one image file (the JSON shape is part of the CLI's contract: keep names stable).</summary>
internal sealed record LayerView(
    string Path,
    string Format,
    string Type,
    long VirtualSize,
    int LogicalSectorSize,
    int PhysicalSectorSize,
    int BlockSize,
    long FileSize,
    IdentityView? Identity,
    ParentLinkView? Parent,
    IReadOnlyDictionary<string, string> Details,
    long? MinimumSize = null)
{
    public static LayerView Of(IDiskLayer layer)
    {
        var details = new Dictionary<string, string>();
        foreach (var (key, value) in layer.Details) details.TryAdd(key, value);
        return new LayerView(
            layer.Path,
            layer.Format.ToString().ToLowerInvariant(),
            layer.Type.ToString().ToLowerInvariant(),
            layer.VirtualSize,
            layer.LogicalSectorSize,
            layer.PhysicalSectorSize,
            layer.BlockSize,
            layer.File.Length,
            layer.Identity == default ? null : new IdentityView(layer.Identity.Id, layer.Identity.Version),
            layer.ParentLink is { } p ? new ParentLinkView(p.CandidatePaths, p.ParentId, p.ParentVersion, p.AlternateParentVersion, p.VersionName, p.ParentFormat?.ToString().ToLowerInvariant()) : null,
            details,
            MinimumSizeOf(layer));
    }

    // What resize --shrink may go down to (Hyper-V's MinimumSize); a child keeps its parent's size. A map entry that
    // cannot be read leaves it unknown: info still shows the rest (check reports the entry).
    private static long? MinimumSizeOf(IDiskLayer layer)
    {
        if (layer.ParentLink is not null) return null;
        try { return Operations.Resize.MinimumSize(layer); }
        catch (Errors.DiskImageException) { return null; }
    }

    /// <summary>Human form, one "name: value" per line.</summary>
    public void WriteText(TextWriter w, string indent = "")
    {
        void Line(string name, string value) => w.WriteLine($"{indent}{name + ":",-22}{value}");
        Line("image", Path);
        Line("format", Format);
        Line("type", Type);
        Line("virtual size", SizeParser.Describe(VirtualSize));
        Line("logical sector size", LogicalSectorSize.ToString());
        Line("physical sector size", PhysicalSectorSize.ToString());
        Line("block size", SizeParser.Describe(BlockSize));
        Line("file size", SizeParser.Describe(FileSize));
        if (MinimumSize is long min) Line("minimum size", SizeParser.Describe(min));
        if (Identity is { } id)
        {
            Line("id", id.Id.ToString());
            Line("version", id.Version.ToString());
        }
        if (Parent is { } p)
        {
            if (p.ParentId is Guid pid) Line("parent id", pid.ToString());
            if (p.ParentVersion is Guid pv) Line($"parent {p.VersionName}", pv.ToString());
            else Line("parent version", "none recorded: the format names its parent by path only, so a changed parent cannot be detected");
            if (p.ParentFormat is string pf) Line("parent format", pf);
            if (p.AlternateParentVersion is Guid alt) Line("parent alternate", alt.ToString());
            foreach (var c in p.CandidatePaths) Line("parent path", c);
        }
        else
        {
            Line("parent", "(none: base image)");
        }
        // Drivers may repeat a fact already shown above (raw reports its file size); show it once.
        foreach (var (key, value) in Details)
            if (!key.Equals("file size", StringComparison.OrdinalIgnoreCase)) Line(key, value);
    }
}

/// <summary>An image's identity (VHDX: virtual disk id and DataWriteGuid; VDI: uuidCreate and uuidModify).</summary>
internal sealed record IdentityView(Guid Id, Guid Version);

/// <summary>How a differencing image names its parent.</summary>
internal sealed record ParentLinkView(IReadOnlyList<string> CandidatePaths, Guid? ParentId, Guid? ParentVersion,
    Guid? AlternateParentVersion, string VersionName, string? ParentFormat);

/// <summary>A whole chain, top first.</summary>
internal sealed record ChainView(long VirtualSize, IReadOnlyList<LayerView> Layers)
{
    public static ChainView Of(DiskChain chain) => new(chain.VirtualSize, chain.Layers.Select(LayerView.Of).ToArray());

    public void WriteText(TextWriter w)
    {
        for (int i = 0; i < Layers.Count; i++)
        {
            w.WriteLine(i == 0 ? "layer 0 (top):" : i == Layers.Count - 1 ? $"layer {i} (base):" : $"layer {i}:");
            Layers[i].WriteText(w, "  ");
        }
    }
}
