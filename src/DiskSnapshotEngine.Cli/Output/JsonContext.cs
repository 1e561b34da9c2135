using System.Text.Json;
using System.Text.Json.Serialization;
using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Cli.Commands;
using DiskSnapshotEngine.Operations;

namespace DiskSnapshotEngine.Cli.Output;

/// <summary>
/// Every document <c>--json</c> writes, its serializer generated at build time (no reflection: the same in the JIT and
/// the Native AOT dse). <see cref="Json.Options"/> resolves types only here, so a document whose type is missing fails
/// in every build and test. The values of a format's details (<see cref="Json.Value"/>) are listed as the types an
/// <c>object</c> holds there.
/// </summary>
// The style of Json.Options (camelCase keys, enum values as camelCase strings) is the context's own, so a direct
// JsonContext.Default.X call writes the same keys; Json.Options adds the indentation and the relaxed encoder.
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, Converters = [typeof(Json.ExtentKindConverter), typeof(Json.CamelCaseEnum<CheckSeverity>)])]
[JsonSerializable(typeof(CliApp.VersionView))]
[JsonSerializable(typeof(ErrorView))]
[JsonSerializable(typeof(Dictionary<string, MessageView>))]
[JsonSerializable(typeof(LayerView))]
[JsonSerializable(typeof(ChainView))]
[JsonSerializable(typeof(long))]
[JsonSerializable(typeof(ulong))]
[JsonSerializable(typeof(bool))]
[JsonSerializable(typeof(string))]
[JsonSerializable(typeof(CheckCommand.CheckView))]
[JsonSerializable(typeof(CheckCommand.AzureView))]
[JsonSerializable(typeof(CheckRepair.RepairView), TypeInfoPropertyName = "CheckRepairView")]
[JsonSerializable(typeof(CloneCommand.CloneView))]
[JsonSerializable(typeof(CompactCommand.CompactView))]
[JsonSerializable(typeof(CompareCommand.CompareView))]
[JsonSerializable(typeof(DemoCommand.DemoView))]
[JsonSerializable(typeof(DetachCommand.DetachView))]
[JsonSerializable(typeof(ExportCommand.ExportView))]
[JsonSerializable(typeof(MapCommand.EntryView))]
[JsonSerializable(typeof(MergeCommand.MergeView))]
[JsonSerializable(typeof(MountCommand.MountView))]
[JsonSerializable(typeof(RebaseCommand.RebaseView))]
[JsonSerializable(typeof(ResetCommand.ResetView))]
[JsonSerializable(typeof(SealCommand.SealView))]
[JsonSerializable(typeof(ServeCommand.ServeView))]
[JsonSerializable(typeof(WriteCommand.WriteView))]
[JsonSerializable(typeof(SnapshotCommand.CreatedView))]
[JsonSerializable(typeof(SnapshotCommand.ListView))]
[JsonSerializable(typeof(SnapshotCommand.NameView))]
[JsonSerializable(typeof(SnapshotCommand.DeletedView))]
[JsonSerializable(typeof(SnapshotCommand.RepairView), TypeInfoPropertyName = "SnapshotRepairView")]
[JsonSerializable(typeof(VmCommand.VboxView))]
[JsonSerializable(typeof(VmCommand.VboxSyncView))]
[JsonSerializable(typeof(VmCommand.HyperVView))]
[JsonSerializable(typeof(VmCommand.LibvirtView))]
[JsonSerializable(typeof(ResizeResult))]
[JsonSerializable(typeof(SetIdentityResult))]
[JsonSerializable(typeof(MeasureResult))]
internal sealed partial class JsonContext : JsonSerializerContext;
