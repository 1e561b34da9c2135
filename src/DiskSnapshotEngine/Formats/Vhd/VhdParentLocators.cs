using System.Text;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine.Formats.Vhd;

/// <summary>
/// The parent locators of a differencing VHD (VHD specification "Parent Locator Entry" and "Implementing a
/// Differencing Hard Disk"): which we write, how we read them, and the paths they give.
/// We write three, each in its own region of at least 4 KiB (room for a longer path on a later relink):
/// W2ru (the path relative to the child, Windows style: what Hyper-V tries first), W2ku (the absolute path, Windows
/// style; on POSIX the path from the root with "\" separators, as our VHDX locators do) and MacX (an RFC 2396 file URL
/// of the absolute path, for POSIX readers). The dynamic header's Parent Unicode Name holds the parent's file name:
/// libvhdi (vhdimount) looks for that name in the child's folder and reads no locator.
/// </summary>
internal static class VhdParentLocators
{
    /// <summary>Largest locator data we read: far above any real path (32 K UTF-16 characters), bounded for hostile files.</summary>
    public const int MaxDataLength = 64 << 10;

    /// <summary>Smallest region we reserve for one locator.</summary>
    public const int MinSpace = 4096;

    /// <summary>A locator as read: its slot, entry, and the path it names (null when it names none we can use).</summary>
    public sealed record Decoded(int Index, VhdParentLocatorEntry Entry, string? Text);

    /// <summary>The locator data we write for <paramref name="parentPath"/>, in the order a reader should try them.</summary>
    public static List<(uint Code, byte[] Data)> Build(string childPath, string parentPath)
    {
        var list = new List<(uint, byte[])>();
        string parent = Path.GetFullPath(parentPath);
        if (ParentPath.Relative(childPath, parent) is { } rel)
        {
            rel = rel.Replace('/', '\\');
            if (!rel.StartsWith("..", StringComparison.Ordinal)) rel = ".\\" + rel;
            list.Add((VhdPlatformCode.W2ru, Encoding.Unicode.GetBytes(rel)));
        }
        if (OperatingSystem.IsWindows())
            list.Add((VhdPlatformCode.W2ku, Encoding.Unicode.GetBytes(parent)));
        else if (!parent.Contains('\\'))
            // A name holding "\" cannot be written Windows-style without changing its meaning: the URL below still names it.
            list.Add((VhdPlatformCode.W2ku, Encoding.Unicode.GetBytes(parent.Replace('/', '\\'))));
        list.Add((VhdPlatformCode.MacX, Encoding.UTF8.GetBytes(new Uri(parent).AbsoluteUri)));
        return list;
    }

    /// <summary>Space reserved for locator data of <paramref name="length"/> bytes.</summary>
    public static uint SpaceFor(int length) => (uint)Math.Max(MinSpace, SpanHelpers.AlignUp(length, 512));

    /// <summary>
    /// A copy of the dynamic header that names a set of locators sits in the 1024 bytes before their first region, written
    /// before the header: a header write torn by a crash (it spans two sectors) is recovered from the copy whose locator
    /// entries are the ones the torn header holds, giving the old link or the new one. Readers other than ours see unused space.
    /// </summary>
    public const int HeaderCopySize = VhdDynamicHeader.Size;

    /// <summary>
    /// Places a header copy at <paramref name="at"/>, then the locator data one region after another; <paramref name="end"/>
    /// is where the last region ends.
    /// </summary>
    public static List<VhdParentLocatorEntry> Layout(IReadOnlyList<(uint Code, byte[] Data)> data, long at, out long end)
    {
        at += HeaderCopySize;
        var entries = new List<VhdParentLocatorEntry>();
        foreach (var (code, bytes) in data)
        {
            uint space = SpaceFor(bytes.Length);
            entries.Add(new VhdParentLocatorEntry(code, space, (uint)bytes.Length, (ulong)at));
            at += space;
        }
        end = at;
        return entries;
    }

    /// <summary>Reads and decodes every non-empty entry. The data must lie in the file before <paramref name="limit"/> (the footer).</summary>
    /// <exception cref="DiskImageException">CorruptImage for an entry outside the file, too long, or naming an impossible path.</exception>
    public static List<Decoded> Read(IImageFile file, VhdDynamicHeader header, long headerOffset, long limit)
    {
        var result = new List<Decoded>();
        for (int i = 0; i < VhdDynamicHeader.LocatorCount; i++)
        {
            var e = header.Locator(i);
            if (e.IsEmpty) continue;
            long at = headerOffset + VhdDynamicHeader.LocatorEntriesOffset + VhdParentLocatorEntry.Size * i;
            if (e.DataLength > MaxDataLength)
                ThrowHelper.Corrupt(file.Path, "parent locator entry", at, $"entry {i} ({VhdPlatformCode.Name(e.PlatformCode)}) claims {e.DataLength} bytes of data (at most {MaxDataLength} are accepted)");
            if (e.DataOffset > (ulong)limit || e.DataOffset + e.DataLength > (ulong)limit || e.DataOffset < VhdFooter.Size)
                ThrowHelper.Corrupt(file.Path, "parent locator entry", at, $"entry {i} ({VhdPlatformCode.Name(e.PlatformCode)}) has its data at {e.DataOffset} (+{e.DataLength}), outside the file's structures (the footer is at {limit})");
            string? text = null;
            if (e.PlatformCode is VhdPlatformCode.W2ru or VhdPlatformCode.W2ku or VhdPlatformCode.MacX or VhdPlatformCode.Wi2r or VhdPlatformCode.Wi2k)
            {
                var data = new byte[e.DataLength];
                file.ReadExactly(data, (long)e.DataOffset, "parent locator");
                text = (e.PlatformCode switch
                {
                    VhdPlatformCode.W2ru or VhdPlatformCode.W2ku => Encoding.Unicode.GetString(data),
                    VhdPlatformCode.MacX => Encoding.UTF8.GetString(data),
                    _ => Encoding.Latin1.GetString(data),
                }).TrimEnd('\0');
                if (text.Length == 0) text = null;
            }
            result.Add(new Decoded(i, e, text));
        }
        return result;
    }

    /// <summary>
    /// Absolute paths to try, in order: W2ru, W2ku, MacX, then the deprecated Wi2r and Wi2k, then the Parent Unicode Name
    /// in the child's folder. A Windows drive path names nothing here and is left out.
    /// </summary>
    public static List<string> Candidates(string childPath, IReadOnlyList<Decoded> locators, string parentName)
    {
        string childDir = Path.GetDirectoryName(childPath) ?? "/";
        var candidates = new List<string>();
        void Add(string? p)
        {
            if (p is not null && !candidates.Contains(p)) candidates.Add(p);
        }
        foreach (uint code in new[] { VhdPlatformCode.W2ru, VhdPlatformCode.W2ku, VhdPlatformCode.MacX, VhdPlatformCode.Wi2r, VhdPlatformCode.Wi2k })
        {
            foreach (var l in locators)
            {
                if (l.Entry.PlatformCode != code || l.Text is null) continue;
                Add(code switch
                {
                    VhdPlatformCode.W2ru or VhdPlatformCode.Wi2r => Relative(childPath, childDir, l.Text),
                    VhdPlatformCode.MacX => FromFileUrl(childPath, childDir, l.Text),
                    _ => Absolute(childPath, l.Text),
                });
            }
        }
        string name = parentName.Split('\\', '/').LastOrDefault(s => s.Length > 0) ?? "";
        if (name.Length > 0 && name is not ("." or "..")) Add(Path.GetFullPath(Path.Combine(childDir, CheckedPath(childPath, name))));
        return candidates;
    }

    private static string Relative(string childPath, string childDir, string text)
    {
        string local = Local(childPath, text);
        return Path.GetFullPath(Path.IsPathRooted(local) ? local : Path.Combine(childDir, local));
    }

    private static string? Absolute(string childPath, string text)
    {
        string local = Local(childPath, text);
        return Path.IsPathRooted(local) && (OperatingSystem.IsWindows() || local.StartsWith('/')) ? Path.GetFullPath(local) : null;
    }

    // RFC 2396 file URLs: file:///abs/path, file://localhost/abs/path, and the relative file://./name some tools write.
    private static string? FromFileUrl(string childPath, string childDir, string text)
    {
        const string scheme = "file://";
        if (!text.StartsWith(scheme, StringComparison.OrdinalIgnoreCase)) return null;
        string rest = text[scheme.Length..];
        if (rest.StartsWith("localhost/", StringComparison.OrdinalIgnoreCase)) rest = rest["localhost".Length..];
        string path = CheckedPath(childPath, Uri.UnescapeDataString(rest));
        if (path.StartsWith('/')) return OperatingSystem.IsWindows() ? null : Path.GetFullPath(path);
        return Path.GetFullPath(Path.Combine(childDir, path));
    }

    private static string Local(string childPath, string text) =>
        OperatingSystem.IsWindows() ? CheckedPath(childPath, text) : CheckedPath(childPath, text).Replace('\\', '/');

    // A locator is text from the file: one the OS cannot name (a NUL inside) is corruption, not a missing parent.
    private static string CheckedPath(string childPath, string text)
    {
        if (text.AsSpan().IndexOfAny(Path.GetInvalidPathChars()) >= 0)
            ThrowHelper.Corrupt(childPath, "parent locator", null, "a parent path contains a character no path can hold");
        return text;
    }

    /// <summary>Writes the locator data where <paramref name="entries"/> place it, and the copy of <paramref name="header"/> (which names them) before it. Not flushed.</summary>
    public static void Write(IImageFile file, VhdDynamicHeader header, IReadOnlyList<(uint Code, byte[] Data)> data, IReadOnlyList<VhdParentLocatorEntry> entries)
    {
        for (int i = 0; i < data.Count; i++) file.Write(data[i].Data, (long)entries[i].DataOffset);
        file.Write(header.Raw, HeaderCopyOffset(header)!.Value);
    }

    /// <summary>Where the copy of a header naming these locators lies, if it names any: just before its first locator region.</summary>
    public static long? HeaderCopyOffset(VhdDynamicHeader header)
    {
        ulong first = ulong.MaxValue;
        for (int i = 0; i < VhdDynamicHeader.LocatorCount; i++)
            if (header.Locator(i) is { IsEmpty: false } e) first = Math.Min(first, e.DataOffset);
        return first == ulong.MaxValue || first < VhdFooter.Size + HeaderCopySize || first > long.MaxValue ? null : (long)first - HeaderCopySize;
    }
}
