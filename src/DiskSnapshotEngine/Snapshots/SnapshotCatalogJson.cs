using System.Text.Json.Serialization;

namespace DiskSnapshotEngine.Snapshots;

/// <summary>
/// The catalog file's JSON style (camelCase, indented, nulls left out), generated at build time: no reflection, so the
/// catalog reads and writes the same in a Native AOT dse.
/// </summary>
[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(SnapshotCatalog))]
internal sealed partial class SnapshotCatalogJson : JsonSerializerContext;
