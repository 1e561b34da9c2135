using System.Buffers.Binary;
using System.Text;
using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;

namespace DiskSnapshotEngine.Formats.Vhdx;

/// <summary>MS-VHDX 2.6.2.6 Parent Locator: a locator type and UTF-16 key/value pairs.</summary>
internal sealed class VhdxParentLocator
{
    public const int HeaderSize = 20, EntrySize = 12;

    public VhdxParentLocator(Guid locatorType, IReadOnlyList<KeyValuePair<string, string>> entries)
    {
        LocatorType = locatorType;
        Entries = entries;
    }

    public Guid LocatorType { get; }
    public IReadOnlyList<KeyValuePair<string, string>> Entries { get; }

    public string? this[string key] => Entries.FirstOrDefault(e => e.Key == key).Value;

    /// <summary>The locator a child at <paramref name="childPath"/> records for <paramref name="parent"/>.</summary>
    public static VhdxParentLocator For(string childPath, ParentDescriptor parent)
    {
        var entries = new List<KeyValuePair<string, string>>
        {
            KeyValuePair.Create("parent_linkage", parent.Identity.Version.ToString("B")),
        };
        if (ParentPath.Relative(childPath, parent.Path) is { } rel)
        {
            // MS-VHDX 2.6.2.6.1 shows relative paths Windows-style, starting from the child's folder.
            rel = rel.Replace('/', '\\');
            if (!rel.StartsWith("..", StringComparison.Ordinal)) rel = ".\\" + rel;
            entries.Add(KeyValuePair.Create("relative_path", rel));
        }
        if (OperatingSystem.IsWindows())
        {
            entries.Add(KeyValuePair.Create("absolute_win32_path", parent.Path));
        }
        else if (Path.GetFullPath(parent.Path) is var full && !full.Contains('\\'))
        {
            // MS-VHDX 2.6.2.6.3 paths use "\" as the separator; a POSIX absolute path written that way is a Win32 path
            // from the root of the current drive, and our reader maps it back (LocalPath). Readers such as libvhdi
            // (vhdimount) find the parent only through absolute_win32_path or volume_path, never relative_path.
            // A name that holds a "\" itself cannot be written this way without changing its meaning, so it is left out.
            entries.Add(KeyValuePair.Create("absolute_win32_path", full.Replace('/', '\\')));
        }
        return new VhdxParentLocator(VhdxConstants.VhdxParentLocatorType, entries);
    }

    /// <summary>How the child at <paramref name="childPath"/> finds and verifies its parent through this locator.</summary>
    /// <exception cref="Errors.DiskImageException">CorruptImage for a missing or malformed parent_linkage, or a path no OS path can hold.</exception>
    public ParentLink ToParentLink(string childPath)
    {
        string childDir = Path.GetDirectoryName(childPath) ?? "/";
        var candidates = new List<string>();
        // MS-VHDX 2.6.2.6.1: try relative_path, then volume_path, then absolute_win32_path.
        if (this["relative_path"] is { Length: > 0 } rel)
        {
            string local = LocalPath(childPath, "relative_path", rel);
            candidates.Add(Path.GetFullPath(Path.Combine(childDir, local)));
        }
        foreach (var key in new[] { "volume_path", "absolute_win32_path" })
        {
            if (this[key] is not { Length: > 0 } p) continue;
            string local = LocalPath(childPath, key, p);
            // A Windows drive or volume path names nothing on another OS; only a path rooted here is a candidate.
            if (Path.IsPathRooted(local) && (OperatingSystem.IsWindows() || local.StartsWith('/')))
                candidates.Add(Path.GetFullPath(local));
        }
        return new ParentLink(candidates, null, ParseLinkage(childPath, "parent_linkage")!.Value, ParseLinkage(childPath, "parent_linkage2"), "parent_linkage");
    }

    // A locator path is text from the file: one the OS cannot name (a NUL) is corruption, not a missing parent.
    private static string LocalPath(string childPath, string key, string value)
    {
        if (value.AsSpan().IndexOfAny(Path.GetInvalidPathChars()) >= 0)
            ThrowHelper.Corrupt(childPath, "parent locator", null, $"{key} contains a character no path can hold");
        return OperatingSystem.IsWindows() ? value : value.Replace('\\', '/');
    }

    private Guid? ParseLinkage(string childPath, string key)
    {
        var v = this[key];
        if (v is null)
        {
            if (key == "parent_linkage") ThrowHelper.Corrupt(childPath, "parent locator", null, "the parent_linkage entry is missing");
            return null;
        }
        if (!Guid.TryParse(v, out var g)) ThrowHelper.Corrupt(childPath, "parent locator", null, $"{key} \"{v}\" is not a GUID");
        return g;
    }

    public static VhdxParentLocator Parse(ReadOnlySpan<byte> b, string path, long fileOffset)
    {
        if (b.Length < HeaderSize) ThrowHelper.Corrupt(path, "parent locator", fileOffset, $"item of {b.Length} bytes is shorter than its header");
        var type = new Guid(b[..16]);
        int count = BinaryPrimitives.ReadUInt16LittleEndian(b[18..]);
        if (HeaderSize + (long)count * EntrySize > b.Length)
            ThrowHelper.Corrupt(path, "parent locator", fileOffset, $"KeyValueCount {count} does not fit in the item of {b.Length} bytes");
        var entries = new List<KeyValuePair<string, string>>(count);
        for (int i = 0; i < count; i++)
        {
            var e = b.Slice(HeaderSize + EntrySize * i, EntrySize);
            uint ko = BinaryPrimitives.ReadUInt32LittleEndian(e), vo = BinaryPrimitives.ReadUInt32LittleEndian(e[4..]);
            int kl = BinaryPrimitives.ReadUInt16LittleEndian(e[8..]), vl = BinaryPrimitives.ReadUInt16LittleEndian(e[10..]);
            if (ko + (long)kl > b.Length || vo + (long)vl > b.Length || kl == 0 || kl % 2 != 0 || vl % 2 != 0)
                ThrowHelper.Corrupt(path, "parent locator entry", fileOffset + HeaderSize + EntrySize * i,
                    $"key [{ko}, +{kl}) or value [{vo}, +{vl}) lies outside the item of {b.Length} bytes or has an odd length");
            string key = Encoding.Unicode.GetString(b.Slice((int)ko, kl));
            // MS-VHDX 2.6.2.6.2: keys are unique; with two, which parent is meant is not known (no "first wins").
            if (entries.Any(x => x.Key == key))
                ThrowHelper.Corrupt(path, "parent locator entry", fileOffset + HeaderSize + EntrySize * i, $"the key \"{key}\" appears twice");
            entries.Add(KeyValuePair.Create(key, Encoding.Unicode.GetString(b.Slice((int)vo, vl))));
        }
        return new VhdxParentLocator(type, entries);
    }

    public byte[] ToBytes()
    {
        var strings = new List<byte[]>();
        foreach (var (k, v) in Entries)
        {
            strings.Add(Encoding.Unicode.GetBytes(k));
            strings.Add(Encoding.Unicode.GetBytes(v));
        }
        int size = HeaderSize + EntrySize * Entries.Count + strings.Sum(s => s.Length);
        var b = new byte[size];
        LocatorType.TryWriteBytes(b);
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(18), (ushort)Entries.Count);
        int data = HeaderSize + EntrySize * Entries.Count;
        for (int i = 0; i < Entries.Count; i++)
        {
            var e = b.AsSpan(HeaderSize + EntrySize * i);
            byte[] k = strings[2 * i], v = strings[2 * i + 1];
            BinaryPrimitives.WriteUInt32LittleEndian(e, (uint)data);
            k.CopyTo(b, data);
            data += k.Length;
            BinaryPrimitives.WriteUInt32LittleEndian(e[4..], (uint)data);
            v.CopyTo(b, data);
            data += v.Length;
            BinaryPrimitives.WriteUInt16LittleEndian(e[8..], (ushort)k.Length);
            BinaryPrimitives.WriteUInt16LittleEndian(e[10..], (ushort)v.Length);
        }
        return b;
    }
}
