using System.Globalization;

namespace DiskSnapshotEngine.Formats.Vhd;

/// <summary>The footer and dynamic disk header fields of a VHD for <c>dse info</c>, named as the spec names them.</summary>
internal static class VhdDetails
{
    public static IReadOnlyList<KeyValuePair<string, string>> Of(VhdLayer layer)
    {
        var f = layer.Footer;
        var list = new List<KeyValuePair<string, string>>();
        void Add(string k, string v) => list.Add(KeyValuePair.Create(k, v));
        string N(ulong v) => v.ToString(CultureInfo.InvariantCulture);
        // The field (seconds since 2000-01-01 UTC) and the date it stands for, each a fact of its own.
        void AddTimeStamp(string k, uint v)
        {
            Add(k, N(v));
            Add($"{k} UTC", VhdTimeStamp.Describe(v));
        }
        Add("Disk Type", N((uint)f.DiskType));
        Add("Current Size", N(f.CurrentSize));
        Add("Original Size", N(f.OriginalSize));
        var g = f.Geometry;
        Add("Disk Geometry", g == VhdDiskGeometry.Maximum ? $"{g} (the maximum)" : g.ToString());
        Add("Geometry Size", N((ulong)g.Sectors * 512));
        Add("Unique Id", f.UniqueIdGuid.ToString("B"));
        AddTimeStamp("Time Stamp", f.TimeStamp);
        Add("Creator Application", $"\"{f.CreatorApplication}\" version 0x{f.CreatorVersion:X8}");
        Add("Creator Host OS", HostName(f.CreatorHostOs));
        Add("Features", $"0x{f.Features:X8}{((f.Features & VhdFooter.FeaturesTemporary) != 0 ? " (temporary)" : "")}");
        Add("File Format Version", $"0x{f.FileFormatVersion:X8}");
        Add("Data Offset", f.DataOffset == VhdFooter.NoDataOffset ? "none (fixed disk)" : N(f.DataOffset));
        Add("Checksum", $"0x{f.Checksum:X8}");
        Add("Saved State", f.SavedState ? "yes" : "no");
        if (layer.FooterRecovered) Add("footer", "damaged at the end of the file; read from the copy at offset 0");
        Add("footer offset", N((ulong)layer.FooterOffset));
        Add("footer length", N((ulong)layer.FooterLength));
        if (layer.Header is not { } h) return list;
        Add("Table Offset", N(h.TableOffset));
        Add("Max Table Entries", N(h.MaxTableEntries));
        Add("Block Size", N(h.BlockSize));
        if (!layer.IsDifferencing) return list;
        Add("Parent Unique ID", h.ParentUniqueId.ToString("B"));
        AddTimeStamp("Parent Time Stamp", h.ParentTimeStamp);
        Add("Parent Unicode Name", h.ParentUnicodeName);
        // One fact per key for each entry, named as the spec's "Parent Locator Entry" fields; the path it holds when decoded.
        foreach (var l in layer.Locators)
        {
            string k = $"Parent Locator Entry {l.Index}";
            Add($"{k} Platform Code", VhdPlatformCode.Name(l.Entry.PlatformCode));
            Add($"{k} Platform Data Space", N(l.Entry.DataSpace));
            Add($"{k} Platform Data Length", N(l.Entry.DataLength));
            Add($"{k} Platform Data Offset", N(l.Entry.DataOffset));
            if (l.Text is not null) Add($"{k} path", l.Text);
        }
        return list;
    }

    private static string HostName(uint code) => code switch
    {
        VhdFooter.HostWi2k => "Wi2k (Windows)",
        0x4D616320 => "Mac (Macintosh)",
        _ => $"0x{code:X8}",
    };
}
