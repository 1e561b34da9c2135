using System.Globalization;
using DiskSnapshotEngine.Errors;

namespace DiskSnapshotEngine.Formats.Qcow2;

/// <summary>The header facts <c>dse info</c> shows for a qcow2 layer, named as qcow2.txt names them, and its internal snapshots.</summary>
internal static class Qcow2Details
{
    /// <summary>Internal snapshots listed one per line; more are summarised.</summary>
    private const int MaxListed = 64;

    public static IReadOnlyList<KeyValuePair<string, string>> Of(Qcow2Layer layer, Qcow2Header h, Qcow2HeaderExtensions ext,
        Qcow2Geometry g, Func<IReadOnlyList<Qcow2Snapshot>> snapshots)
    {
        static string N(long v) => v.ToString(CultureInfo.InvariantCulture);
        var names = ext.FeatureNames();
        var list = new List<KeyValuePair<string, string>>();
        void Add(string k, string v) => list.Add(KeyValuePair.Create(k, v));
        Add("version", h.Version.ToString(CultureInfo.InvariantCulture));
        Add("size", N((long)h.Size));
        if (layer.Snapshot is { } view)
            Add("internal snapshot", $"{Qcow2SnapshotView.Describe(view)}, read-only: this view's size is {N(g.VirtualSize)}");
        Add("cluster_size", N(g.ClusterSize));
        Add("cluster_bits", N(h.ClusterBits));
        Add("refcount_bits", N(g.RefcountBits));
        try
        {
            if (layer.AllocatedBytes() is long used)
            {
                Add("allocated", N(used));
                Add("allocated_clusters", N(used / g.ClusterSize));
            }
            else
            {
                Add("allocated", "not counted (a large image)");
            }
        }
        catch (DiskImageException e)
        {
            Add("allocated", $"unknown: {e.Detail}");
        }
        Add("compression_type", h.CompressionType == 0 ? "zlib" : "zstd");
        Add("extended_l2", g.ExtendedL2 ? "yes" : "no");
        if (g.ExtendedL2) Add("subcluster_size", N(g.SubclusterSize));
        Add("incompatible_features", Qcow2Header.FeatureNames(h.IncompatibleFeatures, 0, names));
        Add("compatible_features", Qcow2Header.FeatureNames(h.CompatibleFeatures, 1, names));
        Add("autoclear_features", Qcow2Header.FeatureNames(h.AutoclearFeatures, 2, names));
        Add("l1_size", h.L1Size.ToString(CultureInfo.InvariantCulture));
        Add("l1_table_offset", N((long)h.L1TableOffset));
        Add("refcount_table_offset", N((long)h.RefcountTableOffset));
        Add("refcount_table_clusters", h.RefcountTableClusters.ToString(CultureInfo.InvariantCulture));
        if (layer.BackingFile is { } b)
        {
            Add("backing_file", b);
            Add("backing_fmt", layer.BackingFormat ?? "(not recorded: the backing file is probed)");
            Add("parent version", "none: qcow2 names its backing file by path only and records no version, so a changed backing file cannot be detected");
        }
        var unknown = ext.Items.Where(e => e.Type is not (Qcow2HeaderExtensions.BackingFormat or Qcow2HeaderExtensions.FeatureNameTable
            or Qcow2HeaderExtensions.Bitmaps)).ToList();
        if (ext.Find(Qcow2HeaderExtensions.Bitmaps) is not null) Add("bitmaps", "present (kept; their consistency bit is cleared when this engine writes)");
        if (unknown.Count > 0) Add("other header extensions", string.Join(", ", unknown.Select(e => $"0x{e.Type:x8} ({e.Data.Length} bytes, kept)")));
        Add("nb_snapshots", h.NbSnapshots.ToString(CultureInfo.InvariantCulture));
        if (h.NbSnapshots > 0)
        {
            try
            {
                var all = snapshots();
                foreach (var s in all.Take(MaxListed))
                    Add($"snapshot {s.Id}", $"'{s.Name}' {s.Date.UtcDateTime:yyyy-MM-dd HH:mm:ss} UTC, vm state {N(s.VmStateSize)} bytes{(s.DiskSize is ulong d ? $", disk size {d.ToString(CultureInfo.InvariantCulture)}" : "")}");
                if (all.Count > MaxListed) Add("snapshots not listed", N(all.Count - MaxListed));
            }
            catch (DiskImageException e)
            {
                Add("snapshot table", $"unreadable: {e.Detail}");
            }
        }
        return list;
    }
}
