using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Formats.Qcow2;

/// <summary>
/// qcow2.txt "Snapshots": the disk as it was at an internal snapshot, read through the snapshot's own L1 table
/// (l1_table_offset, l1_size) with the same cluster mapping as the active one, over the snapshot's disk_size (extra
/// data) or, when the entry has none, the image's current size. Read-only: a write would need copy-on-write of the
/// clusters the snapshot shares.
/// </summary>
internal static class Qcow2SnapshotView
{
    /// <summary>
    /// The snapshot <paramref name="selector"/> names, matched by id first and then by name, as qemu-img's -s does.
    /// </summary>
    /// <exception cref="DiskImageException">InvalidArgument when no snapshot matches; CorruptImage for an unreadable table.</exception>
    public static Qcow2Snapshot Find(IReadOnlyList<Qcow2Snapshot> snapshots, string selector, string path)
    {
        var found = snapshots.FirstOrDefault(s => s.Id == selector) ?? snapshots.FirstOrDefault(s => s.Name == selector);
        if (found is not null) return found;
        string known = snapshots.Count == 0 ? "it has none"
            : "it has " + string.Join(", ", snapshots.Take(8).Select(s => $"{s.Id} '{s.Name}'")) + (snapshots.Count > 8 ? $" and {snapshots.Count - 8} more" : "");
        throw new DiskImageException(ErrorKind.InvalidArgument, $"no internal snapshot with the id or name '{selector}' ({known})", path, "snapshot table");
    }

    /// <summary>Describes a snapshot in messages and in <c>info</c>: its id and name.</summary>
    public static string Describe(Qcow2Snapshot s) => $"snapshot {s.Id} '{s.Name}'";

    /// <summary>
    /// The geometry and cluster tables of the snapshot's view. The L1 table is checked as the active one is (inside the
    /// file, cluster aligned, clear of the header and the active tables, within qemu's size limit) before it is read.
    /// </summary>
    /// <exception cref="DiskImageException">CorruptImage naming the snapshot.</exception>
    public static (Qcow2Geometry Geometry, Qcow2Tables Tables) Open(IImageFile file, Qcow2Geometry active, Qcow2Snapshot s)
    {
        string path = active.Path, what = Describe(s);
        if (s.DiskSize is ulong diskSize) Qcow2Header.CheckVirtualSize(diskSize, path, "snapshot table", s.EntryOffset + 48, $"{what}: disk_size");
        long size = (long?)s.DiskSize ?? active.VirtualSize;
        long l1Bytes = s.L1Size * 8L;
        if (l1Bytes > Qcow2Tables.MaxL1Bytes)
            ThrowHelper.Corrupt(path, "snapshot table", s.EntryOffset + 8, $"{what}: l1_size {s.L1Size} is above qemu's {Qcow2Tables.MaxL1Bytes >> 20} MiB L1 table limit");
        string l1Name = $"L1 table of {what}";
        if (l1Bytes > 0)
        {
            active.CheckTableCluster(s.L1TableOffset, l1Name, "snapshot table", s.EntryOffset);
            if (s.L1TableOffset > file.Length - l1Bytes)
                ThrowHelper.Corrupt(path, "snapshot table", s.EntryOffset,
                    $"the {l1Name} at {s.L1TableOffset} (+{l1Bytes}) reaches past the end of the file at {file.Length}");
            foreach (var (o, l, name) in active.Reserved)
                if (s.L1TableOffset < o + l && o < s.L1TableOffset + l1Bytes)
                    ThrowHelper.Corrupt(path, "snapshot table", s.EntryOffset, $"the {l1Name} at {s.L1TableOffset} (+{l1Bytes}) overlaps the {name} at {o}");
        }
        var g = active.WithVirtualSize(size);
        g.Reserved.Add((s.L1TableOffset, l1Bytes, l1Name));
        var l1 = Qcow2Tables.ReadL1(file, s.L1TableOffset, s.L1Size);
        return (g, new Qcow2Tables(file, g, l1, s.L1TableOffset, l1Name));
    }
}
