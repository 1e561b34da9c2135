using System.Text.Json;
using System.Text.Json.Serialization;
using DiskSnapshotEngine.Errors;

namespace DiskSnapshotEngine.Operations;

/// <summary>
/// The plan of a multi-step operation (merge, pull), kept beside the image while it runs. It is replaced atomically
/// at each phase change, so after a crash it names exactly which phase was reached; running the same command again
/// reads it and finishes the work. Each phase is idempotent, so redoing a phase that had partly run is safe.
/// </summary>
internal sealed record OperationJournal
{
    /// <summary>Journal file name suffix (beside the image the command names).</summary>
    public const string Suffix = ".dse-journal.json";

    /// <summary>"commit" or "pull".</summary>
    public required string Operation { get; init; }
    /// <summary>The image the command named.</summary>
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
    /// <summary>"copy", "relink", "remove".</summary>
    public required string Phase { get; init; }


    public static string PathFor(string image) => Path.GetFullPath(image) + Suffix;

    public void Save() => DurableFiles.WriteAllTextAtomic(PathFor(Image), JsonSerializer.Serialize(this, OperationJournalJson.Default.OperationJournal));

    public static OperationJournal? Load(string image)
    {
        string path = PathFor(image);
        if (!File.Exists(path)) return null;
        try
        {
            return JsonSerializer.Deserialize(File.ReadAllText(path), OperationJournalJson.Default.OperationJournal)
                ?? throw new JsonException("empty journal");
        }
        catch (JsonException e)
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

    public void Delete() => DurableFiles.Delete(PathFor(Image));
}

// Source-generated (no reflection at run time): a merge saves its journal three times, and the reflection-based
// serializer's first use costs a cold process tens of milliseconds of JIT.
[JsonSourceGenerationOptions(WriteIndented = true, DefaultIgnoreCondition = JsonIgnoreCondition.Never)]
[JsonSerializable(typeof(OperationJournal))]
internal sealed partial class OperationJournalJson : JsonSerializerContext;
