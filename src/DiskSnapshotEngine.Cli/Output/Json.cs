using System.Text.Json;
using System.Text.Json.Serialization;

namespace DiskSnapshotEngine.Cli.Output;

/// <summary>The one JSON style of <c>--json</c>: camelCase fields and enum values, indented, nulls kept (stable shape).</summary>
internal static class Json
{
    public static JsonSerializerOptions Options { get; } = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = true,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.CamelCase) },
    };

    public static string Serialize<T>(T value) => JsonSerializer.Serialize(value, Options);
}
