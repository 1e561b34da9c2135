using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;
using static DiskSnapshotEngine.Formats.Vhdx.VhdxConstants;

namespace DiskSnapshotEngine.Formats.Vhdx;

/// <summary>
/// The metadata region of an open VHDX (MS-VHDX 2.6): its table and the changes a layer makes to its items. Changes
/// are whole 4 KiB sectors in the layer's <see cref="VhdxSectorCache"/>, so they reach the file only through the log.
/// </summary>
internal sealed class VhdxMetadataRegion
{
    private readonly string _path;
    private readonly VhdxSectorCache _sectors;

    /// <param name="path">The file's path, for errors.</param>
    /// <param name="region">The metadata region.</param>
    /// <param name="table">Its parsed table (kept up to date by the changes made here).</param>
    /// <param name="sectors">The layer's metadata sector cache.</param>
    public VhdxMetadataRegion(string path, VhdxRegionTableEntry region, VhdxMetadataTable table, VhdxSectorCache sectors)
    {
        _path = path;
        Region = region;
        Table = table;
        _sectors = sectors;
    }

    /// <summary>The region.</summary>
    public VhdxRegionTableEntry Region { get; }

    /// <summary>The table as it stands (including pending changes).</summary>
    public VhdxMetadataTable Table { get; }

    /// <summary>
    /// Where a new value of <paramref name="length"/> bytes for the item at <paramref name="index"/> goes: in place
    /// when it fits before the next item, otherwise after the last item. Nothing is changed.
    /// </summary>
    /// <exception cref="DiskImageException">Unsupported when the region has no room for it.</exception>
    public uint PlaceReplacement(int index, int length, string structure)
    {
        var old = Table.Entries[index];
        uint offset = old.Offset;
        long limit = Table.Entries.Where(e => e.Length > 0 && e.Offset > old.Offset).Select(e => (long)e.Offset).DefaultIfEmpty(Region.Length).Min();
        if (offset + length > limit)
        {
            long after = Table.Entries.Select(e => (long)e.Offset + e.Length).Max();
            offset = (uint)SpanHelpers.AlignUp(after, 8);
            if (offset + length > Region.Length)
                throw new DiskImageException(ErrorKind.Unsupported, $"the new {structure} ({length} bytes) does not fit in the metadata region", _path, structure);
        }
        return offset;
    }

    /// <summary>Where a new item of <paramref name="length"/> bytes goes: after the last item. Nothing is changed.</summary>
    /// <exception cref="DiskImageException">Unsupported when the table or the region has no room for it.</exception>
    public uint PlaceNew(int length, string structure)
    {
        if (Table.Entries.Count >= VhdxMetadataTable.MaxEntries)
            throw new DiskImageException(ErrorKind.Unsupported, $"the metadata table already holds {Table.Entries.Count} items; no room for the {structure}", _path, structure);
        long after = Math.Max(MetadataTableSize, Table.Entries.Select(e => (long)e.Offset + e.Length).DefaultIfEmpty(0).Max());
        long offset = SpanHelpers.AlignUp(after, 8);
        if (offset + length > Region.Length)
            throw new DiskImageException(ErrorKind.Unsupported, $"the new {structure} ({length} bytes) does not fit in the metadata region", _path, structure);
        return (uint)offset;
    }

    /// <summary>Records the item at <paramref name="index"/> at <paramref name="offset"/> with <paramref name="value"/>: its table entry and its bytes become pending sectors.</summary>
    public void Replace(int index, uint offset, ReadOnlySpan<byte> value)
    {
        Table.Entries[index] = Table.Entries[index] with { Offset = offset, Length = (uint)value.Length };
        Record(index, offset, value);
    }

    /// <summary>Adds an item (its offset from <see cref="PlaceNew"/>): the table's entry count, its entry and its bytes become pending sectors.</summary>
    public void Add(VhdxMetadataTableEntry entry, ReadOnlySpan<byte> value)
    {
        Table.Entries.Add(entry with { Length = (uint)value.Length });
        Record(Table.Entries.Count - 1, entry.Offset, value);
    }

    /// <summary>The index of a system item (IsUser = 0) in the table; Corrupt when it is missing.</summary>
    public int IndexOf(Guid itemId, string structure)
    {
        int index = Table.Entries.FindIndex(e => e.ItemId == itemId && !e.IsUser);
        if (index < 0) ThrowHelper.Corrupt(_path, "metadata table", Region.FileOffset, $"the {structure} item is missing");
        return index;
    }

    /// <summary>New bytes for a fixed-size item in place (Virtual Disk ID, size, file parameters): only its sectors become pending.</summary>
    public void Overwrite(int index, ReadOnlySpan<byte> value)
    {
        if (value.Length != Table.Entries[index].Length)
            throw new InvalidOperationException($"item {{{Table.Entries[index].ItemId}}} holds {Table.Entries[index].Length} bytes, not {value.Length}");
        Patch(Table.Entries[index].Offset, value);
    }

    /// <summary>
    /// Drops the item at <paramref name="index"/> from the table (its bytes stay, unreferenced): the later entries move
    /// up one slot, so every table sector from the header to the old last entry becomes pending.
    /// </summary>
    public void Remove(int index)
    {
        int oldEnd = 32 + 32 * Table.Entries.Count;
        Table.Entries.RemoveAt(index);
        var table = new byte[MetadataTableSize];
        Table.Write(table);
        Patch(0, table.AsSpan(0, (int)SpanHelpers.AlignUp(oldEnd, 4096)));
    }

    private void Record(int index, uint offset, ReadOnlySpan<byte> value)
    {
        var table = new byte[MetadataTableSize];
        Table.Write(table);
        // The table entry's sector (and the table header's, which holds EntryCount), and the item's sectors, as whole
        // 4 KiB sectors through the log: one commit makes all of them visible at once.
        int entrySector = (int)SpanHelpers.AlignDown(32 + 32 * index, 4096);
        Patch(entrySector, table.AsSpan(entrySector, 4096));
        if (entrySector != 0) Patch(0, table.AsSpan(0, 4096));
        Patch(offset, value);
    }

    private void Patch(long regionOffset, ReadOnlySpan<byte> data)
    {
        long pos = Region.FileOffset + regionOffset;
        while (data.Length > 0)
        {
            long sectorStart = SpanHelpers.AlignDown(pos, 4096);
            int inSector = (int)(pos - sectorStart);
            int n = Math.Min(data.Length, 4096 - inSector);
            var sector = _sectors.GetForWrite(sectorStart, "metadata region");
            data[..n].CopyTo(sector.AsSpan(inSector));
            data = data[n..];
            pos += n;
        }
    }
}
