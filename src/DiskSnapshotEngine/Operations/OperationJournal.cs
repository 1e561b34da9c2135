using System.Text.Json;
using DiskSnapshotEngine.Errors;

namespace DiskSnapshotEngine.Operations;

/// <summary>
/// The plan of a multi-step operation (merge, pull), kept beside the image while it runs. It is replaced atomically
/// at each phase change, so after a crash it names exactly which phase was reached; running the same command again
/// reads it and finishes the work. Each phase is idempotent, so redoing a phase that had partly run is safe.
/// </summary>
internal sealed record OperationJournal
{
    /// <summary>Journal file name suffix (beside the file the image's name leads to).</summary>
    public const string Suffix = ".dse-journal.json";

    /// <summary>"commit" or "pull".</summary>
    public required string Operation { get; init; }
    /// <summary>The image the command named, as given (a link, when it was one): a resume opens the chain there again.</summary>
    public required string Image { get; init; }
    /// <summary>Commit: the layer receiving the data. Pull: the new parent (the grandparent).</summary>
    public string? Target { get; init; }
    /// <summary>Identity (id) of <see cref="Target"/>, to recognise it again.</summary>
    public Guid TargetId { get; init; }
    /// <summary>Commit: layers whose data goes into the target, top first (removed at the end).</summary>
    public string[] Merged { get; init; } = Array.Empty<string>();
    /// <summary>Commit: children of the image to relink to the target.</summary>
    public string[] Children { get; init; } = Array.Empty<string>();
    /// <summary>Commit: rename the target over the image at the end instead of deleting the image.</summary>
    public bool ReplaceImage { get; init; }
    /// <summary>Commit: the target's seal records the merged layer above it as its sole clone: its golden seal is lifted after the copy.</summary>
    public bool LiftSeal { get; init; }
    /// <summary>
    /// Commit: each layer the merge removes (or, replacing the image, renames away) that was named through a symbolic
    /// link, with the file the link led to at plan time. The link is removed with its file only while it still leads
    /// there: a link re-pointed since is the user's again.
    /// </summary>
    public JournalLink[] Links { get; init; } = Array.Empty<JournalLink>();
    /// <summary>
    /// Commit: the image, the target and every merged layer as planned: the real file each name led to and that file's
    /// identity (device, inode). A rerun renames and removes only these files, and only while each is still the same
    /// file: a name re-pointed or a file replaced since (a new image made at the path) is never followed to another file.
    /// Empty in a journal from a version that did not record them (its names are followed as that version did).
    /// </summary>
    public JournalFile[] Files { get; init; } = Array.Empty<JournalFile>();
    /// <summary>"copy", "relink", "remove".</summary>
    public required string Phase { get; init; }

    /// <summary>The file <paramref name="layer"/> led to when the merge was planned (its own path when it was no link).</summary>
    public string FileOf(string layer) =>
        RecordOf(layer) is { } file ? file.File
        : Array.Find(Links, l => string.Equals(l.Link, layer, StringComparison.Ordinal)) is { } link ? link.File : IO.FileNode.Target(layer);

    private JournalFile? RecordOf(string name) => Array.Find(Files, f => string.Equals(f.Name, name, StringComparison.Ordinal));

    /// <summary>The real file <paramref name="name"/> leads to now, with its identity, for <see cref="Files"/>.</summary>
    public static JournalFile Record(string name)
    {
        string file = IO.FileNode.Target(name);
        var node = IO.FileNode.Of(file);
        return new JournalFile(name, file, node.Device, node.Inode);
    }

    /// <summary>
    /// Refuses (ChainInvalid, nothing changed) when a file this journal recorded is another file now: one that exists
    /// at the recorded path with another identity (a file gone is what an interrupted remove phase leaves). The image's
    /// file may be the target itself once the target was renamed over it.
    /// </summary>
    /// <exception cref="DiskImageException">ChainInvalid, naming the file and the journal.</exception>
    public void RequireRecordedFiles()
    {
        var target = Target is null ? null : RecordOf(Target);
        foreach (var f in Files)
        {
            if (!OperatingSystem.IsLinux() || IO.Libc.LStat(f.File, out var st) != 0) continue;
            // A regular file, not only the same inode: a link made right after the file's delete may get its inode.
            const uint fileType = 0xF000, regular = 0x8000;
            bool same = (st.Mode & fileType) == regular && (st.Device == f.Device && st.Inode == f.Inode)
                || (ReplaceImage && string.Equals(f.Name, Image, StringComparison.Ordinal) && target is not null && st.Device == target.Device && st.Inode == target.Inode);
            if (!same)
                throw new DiskImageException(ErrorKind.ChainInvalid,
                    $"{f.File} is not the file the interrupted merge recorded (it was replaced since); nothing was changed: inspect the files and remove the journal {OwnPath} to start over",
                    f.File, "journal");
        }
    }


    // Beside the file the name leads to (a link's target, NamedImage.File), not beside the link: that is the file the
    // operation writes or removes, and whatever name the user gives it next time (the link, the real file, another
    // link) leads there, so a rerun finds the journal. The journal records the name the chain was opened through
    // (Image), so the rerun opens the same chain, parents beside the link included, whichever name it was given.
    public static string PathFor(string image) => IO.FileNode.Target(image) + Suffix;

    public void Save() => DurableFiles.WriteAllTextAtomic(OwnPath, OperationJournalJson.Write(this));

    // Where this journal is: beside the file Image led to when it was planned, also once the merge has removed Image's
    // link (the last step before the journal goes), so a rerun under the real name finds it and deletes it there.
    private string OwnPath => FileOf(Image) + Suffix;

    public static OperationJournal? Load(string image)
    {
        string path = PathFor(image);
        if (!File.Exists(path)) return null;
        try
        {
            return OperationJournalJson.Read(File.ReadAllText(path));
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException)
        {
            throw new DiskImageException(ErrorKind.CorruptImage,
                $"the operation journal cannot be read ({e.Message}); inspect it and remove it to start over", path, "journal", inner: e);
        }
    }

    /// <summary>
    /// The journal of an interrupted <paramref name="operation"/> on <paramref name="image"/>, or null when none is
    /// recorded; another operation's journal is refused, since only its own command can finish it.
    /// </summary>
    /// <exception cref="DiskImageException">InvalidArgument (another operation is recorded); CorruptImage (unreadable journal).</exception>
    public static OperationJournal? LoadOwn(string image, string operation)
    {
        var journal = Load(image);
        if (journal is not null && journal.Operation != operation)
            ThrowHelper.InvalidArgument($"an interrupted '{journal.Operation}' is recorded in {PathFor(image)}; finish it with the same command first", image);
        return journal;
    }

    public void Delete() => DurableFiles.Delete(OwnPath);
}

/// <summary>A layer's symbolic link as a merge planned it: its path and the full path of the file it led to.</summary>
internal sealed record JournalLink(string Link, string File);

/// <summary>A name a merge planned to rename or remove: the real file it led to then and that file's (device, inode).</summary>
internal sealed record JournalFile(string Name, string File, ulong Device, ulong Inode);

// Written and read with the writer and the document (not the serializer, even source-generated: its metadata types
// instantiated over bool and Guid are compiled at run time, over a hundred methods in every cold merge). The layout is
// the serializer's for this record: its property names in declaration order, indented, null written, so journals of
// interrupted runs written by earlier versions still load (unknown properties are ignored, as the serializer does).
internal static class OperationJournalJson
{
    public static string Write(OperationJournal journal)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteString(nameof(OperationJournal.Operation), journal.Operation);
            w.WriteString(nameof(OperationJournal.Image), journal.Image);
            w.WriteString(nameof(OperationJournal.Target), journal.Target);
            w.WriteString(nameof(OperationJournal.TargetId), journal.TargetId);
            WriteArray(w, nameof(OperationJournal.Merged), journal.Merged);
            WriteArray(w, nameof(OperationJournal.Children), journal.Children);
            w.WriteBoolean(nameof(OperationJournal.ReplaceImage), journal.ReplaceImage);
            w.WriteBoolean(nameof(OperationJournal.LiftSeal), journal.LiftSeal);
            w.WriteStartArray(nameof(OperationJournal.Links));
            foreach (var link in journal.Links)
            {
                w.WriteStartObject();
                w.WriteString(nameof(JournalLink.Link), link.Link);
                w.WriteString(nameof(JournalLink.File), link.File);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteStartArray(nameof(OperationJournal.Files));
            foreach (var file in journal.Files)
            {
                w.WriteStartObject();
                w.WriteString(nameof(JournalFile.Name), file.Name);
                w.WriteString(nameof(JournalFile.File), file.File);
                w.WriteNumber(nameof(JournalFile.Device), file.Device);
                w.WriteNumber(nameof(JournalFile.Inode), file.Inode);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteString(nameof(OperationJournal.Phase), journal.Phase);
            w.WriteEndObject();
        }
        return System.Text.Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    /// <exception cref="JsonException">Not a journal (a required property missing, or not JSON).</exception>
    /// <exception cref="InvalidOperationException">A property of the wrong kind.</exception>
    /// <exception cref="FormatException">A TargetId that is not a GUID.</exception>
    public static OperationJournal Read(string text)
    {
        using var document = JsonDocument.Parse(text);
        var root = document.RootElement;
        if (root.ValueKind == JsonValueKind.Null) throw new JsonException("empty journal");
        if (root.ValueKind != JsonValueKind.Object) throw new JsonException($"a journal is a JSON object, not {root.ValueKind}");
        return new OperationJournal
        {
            Operation = Required(root, nameof(OperationJournal.Operation)),
            Image = Required(root, nameof(OperationJournal.Image)),
            Target = root.TryGetProperty(nameof(OperationJournal.Target), out var target) ? target.GetString() : null,
            TargetId = root.TryGetProperty(nameof(OperationJournal.TargetId), out var id) ? id.GetGuid() : Guid.Empty,
            Merged = Strings(root, nameof(OperationJournal.Merged)),
            Children = Strings(root, nameof(OperationJournal.Children)),
            ReplaceImage = root.TryGetProperty(nameof(OperationJournal.ReplaceImage), out var replace) && replace.GetBoolean(),
            LiftSeal = root.TryGetProperty(nameof(OperationJournal.LiftSeal), out var lift) && lift.GetBoolean(),
            Links = LinksOf(root),
            Files = FilesOf(root),
            Phase = Required(root, nameof(OperationJournal.Phase)),
        };
    }

    private static void WriteArray(Utf8JsonWriter w, string name, string[] values)
    {
        w.WriteStartArray(name);
        foreach (var v in values) w.WriteStringValue(v);
        w.WriteEndArray();
    }

    // A journal written before links were recorded has none: its links are left as that version left them.
    private static JournalLink[] LinksOf(JsonElement root)
    {
        if (!root.TryGetProperty(nameof(OperationJournal.Links), out var array) || array.ValueKind == JsonValueKind.Null) return Array.Empty<JournalLink>();
        var links = new JournalLink[array.GetArrayLength()];
        int i = 0;
        foreach (var l in array.EnumerateArray()) links[i++] = new JournalLink(Required(l, nameof(JournalLink.Link)), Required(l, nameof(JournalLink.File)));
        return links;
    }

    // A journal written before files were recorded has none: its names are followed as that version followed them.
    private static JournalFile[] FilesOf(JsonElement root)
    {
        if (!root.TryGetProperty(nameof(OperationJournal.Files), out var array) || array.ValueKind == JsonValueKind.Null) return Array.Empty<JournalFile>();
        var files = new JournalFile[array.GetArrayLength()];
        int i = 0;
        foreach (var f in array.EnumerateArray())
            files[i++] = new JournalFile(Required(f, nameof(JournalFile.Name)), Required(f, nameof(JournalFile.File)),
                RequiredNumber(f, nameof(JournalFile.Device)), RequiredNumber(f, nameof(JournalFile.Inode)));
        return files;
    }

    // A missing number is a journal that cannot be read, as a missing string is (GetProperty would throw KeyNotFoundException).
    private static ulong RequiredNumber(JsonElement root, string name) =>
        root.TryGetProperty(name, out var p) ? p.GetUInt64() : throw new JsonException($"the journal has no {name}");

    private static string Required(JsonElement root, string name) =>
        root.TryGetProperty(name, out var p) && p.GetString() is { } value ? value : throw new JsonException($"the journal has no {name}");

    private static string[] Strings(JsonElement root, string name)
    {
        if (!root.TryGetProperty(name, out var array) || array.ValueKind == JsonValueKind.Null) return Array.Empty<string>();
        var values = new string[array.GetArrayLength()];
        int i = 0;
        foreach (var v in array.EnumerateArray()) values[i++] = v.GetString() ?? throw new JsonException($"a null in the journal's {name}");
        return values;
    }
}
