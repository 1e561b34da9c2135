using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using DiskSnapshotEngine.Block;

namespace DiskSnapshotEngine.Cli.Output;

/// <summary>
/// The one JSON style of <c>--json</c> (README "JSON output"): camelCase keys and enum values, indented, nulls kept
/// (stable shape), extent kinds in the words of the text output.
/// </summary>
internal static class Json
{
    // JsonContext's own options (Web defaults, the enum converters of its JsonSourceGenerationOptions) copied: one style.
    // The copy keeps their resolver, JsonContext.Default: only the types it generated at build time, so the JIT build
    // fails on a type the AOT build could not write.
    public static JsonSerializerOptions Options { get; } = new(JsonContext.Default.Options)
    {
        WriteIndented = true,
        // Paths and messages stay readable ('<', '>', quotes unescaped); the output is never embedded in HTML.
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    /// <summary>The same style on one line (streamed arrays, stderr messages, serve's announcement).</summary>
    public static JsonSerializerOptions OneLine { get; } = new(Options) { WriteIndented = false };

    /// <summary><paramref name="value"/> as an indented document.</summary>
    public static string Serialize<T>(T value) => JsonSerializer.Serialize(value, TypeInfo<T>(Options));

    /// <summary><paramref name="value"/> on one line.</summary>
    public static string OneLineOf<T>(T value) => JsonSerializer.Serialize(value, TypeInfo<T>(OneLine));

    private static JsonTypeInfo<T> TypeInfo<T>(JsonSerializerOptions options) => (JsonTypeInfo<T>)options.GetTypeInfo(typeof(T));

    /// <summary>The word the text output uses for an extent kind: data, zero, absent.</summary>
    public static string Word(ExtentKind kind) => kind switch { ExtentKind.Data => "data", ExtentKind.Zero => "zero", _ => "absent" };

    /// <summary>A free-text key ("virtual size", "backing_file", "u32Type") as a camelCase key without spaces.</summary>
    public static string Key(string text)
    {
        var words = text.Split([' ', '_', '-', '.', '/', '(', ')', ':'], StringSplitOptions.RemoveEmptyEntries);
        if (words.Length == 0) return "value";
        var sb = new System.Text.StringBuilder();
        foreach (var w in words)
            sb.Append(sb.Length == 0 ? char.ToLowerInvariant(w[0]) : char.ToUpperInvariant(w[0])).Append(w.AsSpan(1));
        return sb.ToString();
    }

    /// <summary>
    /// A free-text value as its JSON type: an integer or a boolean ("yes"/"no" as the text output says it, or
    /// "true"/"false") when it is one, else the text. The drivers keep one fact per detail so that this holds.
    /// </summary>
    public static object Value(string text) =>
        long.TryParse(text, System.Globalization.NumberStyles.AllowLeadingSign, System.Globalization.CultureInfo.InvariantCulture, out long n) ? n
        : ulong.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out ulong u) ? u
        : text is "true" or "yes" ? true
        : text is "false" or "no" ? false
        : text;

    /// <summary>A driver's free-text details as JSON members (camelCase keys, typed values, each key once).</summary>
    public static IReadOnlyDictionary<string, object> Details(IEnumerable<KeyValuePair<string, string>> details)
    {
        var result = new Dictionary<string, object>();
        foreach (var (key, value) in details) result.TryAdd(Key(key), Value(value));
        return result;
    }

    /// <summary>
    /// An enum of a view as its member name in camelCase. The generic converter (the non-generic one builds its
    /// converter at run time, which Native AOT cannot), with a parameterless constructor for JsonSourceGenerationOptions.
    /// </summary>
    internal sealed class CamelCaseEnum<TEnum>() : JsonStringEnumConverter<TEnum>(JsonNamingPolicy.CamelCase)
        where TEnum : struct, Enum;

    /// <summary>An extent kind in the words of the text output (<see cref="Word"/>).</summary>
    internal sealed class ExtentKindConverter : JsonConverter<ExtentKind>
    {
        public override ExtentKind Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
            reader.GetString() switch { "data" => ExtentKind.Data, "zero" => ExtentKind.Zero, _ => ExtentKind.NotPresent };

        public override void Write(Utf8JsonWriter writer, ExtentKind value, JsonSerializerOptions options) => writer.WriteStringValue(Word(value));
    }
}
