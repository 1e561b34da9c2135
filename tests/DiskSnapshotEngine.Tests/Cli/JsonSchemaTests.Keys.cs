using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Cli.Commands;
using DiskSnapshotEngine.Cli.Output;
using DiskSnapshotEngine.Operations;

namespace DiskSnapshotEngine.Tests.Cli;

// The keys of every verb's --json document, pinned: the names and order dse wrote at 553dff2 (before the documents
// became records serialized by source generation), so a renamed, dropped, added or moved key fails here. A run is named
// by its verb and its options; nested objects are pinned where the shape is shared (the parent link, a chain's layers).
public partial class JsonSchemaTests
{
    private const string Layer = "image,format,type,virtualSize,allocatedSize,fileSize,blockSize,logicalSectorSize,physicalSectorSize,identity,parent,sealed,seal,soleChild,details,minimumSize";
    private const string Parent = "parent{image,candidatePaths,parentId,parentVersion,alternateParentVersion,versionName,parentFormat}";

    private static string Shape(params string[] parts) => string.Join(" | ", parts);

    private static readonly Dictionary<string, string> s_keys = new()
    {
        ["create --size"] = Shape(Layer, "identity{id,version}"),
        ["create --parent"] = Shape(Layer, "identity{id,version}", Parent),
        ["info"] = Shape(Layer, "identity{id,version}", Parent),
        ["info --chain"] = Shape("image,virtualSize,layers", "layers[{" + Layer + "}]"),
        ["write --offset --input"] = Shape("image,offset,bytesWritten"),
        ["export"] = Shape("image,output,format,virtualSize"),
        ["check"] = Shape("image,layers,clean,hasErrors,errors,warnings,leaks,problems"),
        ["clone"] = Shape("image,source,linked,parent,bytesWritten,bytesZero"),
        ["clone --linked"] = Shape("image,source,linked,parent,bytesWritten,bytesZero", Parent),
        ["compare"] = Shape("images,identical,firstDifference,reason"),
        ["map"] = Shape("[{offset,length,kind,layerIndex,file,fileOffset,compressed}]"),
        ["compact"] = Shape("image,sizeBefore,sizeAfter,bytesWritten,bytesZero"),
        ["measure"] = Shape("source,format,type,virtualSize,blockSize,required,fullyAllocated"),
        ["reset"] = Shape("image,parent,sizeBefore,sizeAfter", Parent),
        ["detach"] = Shape("image,formerParents,bytesWritten,bytesZero"),
        ["resize --size"] = Shape("image,oldSize,newSize,inPlace"),
        ["set-identity --new"] = Shape("image,oldId,newId"),
        ["seal"] = Shape("image,sealed,seal,was"),
        ["unseal"] = Shape("image,sealed,seal,was"),
        ["merge"] = Shape("image,target,resumed,bytesWritten,bytesZero,relinked,removed,unsealed,removedLinks,keptLinks"),
        ["rebase --parent"] = Shape("image,parent,mode,bytesWritten,bytesZero", Parent),
        ["snapshot create --name"] = Shape("image,snapshot", "snapshot{id,name,description,created,parent,file}"),
        ["snapshot list"] = Shape("image,currentStateSize,snapshots", "snapshots[{id,name,description,created,parent,file,fileSize,isCurrent}]"),
        ["snapshot revert --name"] = Shape("image,snapshot"),
        ["rollback"] = Shape("image,snapshot"),
        ["snapshot delete --name"] = Shape("image,snapshot,deleted,removedLinks,keptLinks"),
        ["snapshot repair"] = Shape("image,snapshots,problems", "snapshots[{id,name,description,created,parent,file}]"),
        ["demo --dir --format"] = Shape("dir,passed,proofs", "proofs[{claim,holds}]"),
        ["vm register virtualbox --name --disk --dry-run"] = Shape("name,image,dryRun,vboxFile,registered,commands"),
        ["vm register virtualbox --name --disk --folder"] = Shape("name,image,dryRun,vboxFile,registered,commands"),
        ["vm sync virtualbox --vm --disk"] = Shape("vboxFile,image"),
        ["vm register hyperv --name --disk --dry-run"] = Shape("name,ran,script"),
        ["vm register libvirt --name --disk --dry-run"] = Shape("name,image,overlay,defined,domainXml,command,nbdSocket,unitName,unitFile,unitText,enableCommand"),
        ["vm checkpoint hyperv --name --dry-run"] = Shape("name,ran,script"),
        ["serve"] = Shape("image,uri,socket,address,port,exportName,readOnly,size"),
    };

    private static string RunName(string verb, string[] args) =>
        string.Join(' ', args.Where(a => a.StartsWith("--", StringComparison.Ordinal)).Prepend(verb));

    // The top-level keys in order, then each nested object's keys (an array of objects: its first element's), but the
    // format's free-form details.
    internal static string ShapeOf(JsonElement root)
    {
        static string Keys(JsonElement o) => string.Join(',', o.EnumerateObject().Select(p => p.Name));
        if (root.ValueKind == JsonValueKind.Array)
            return $"[{{{(root.GetArrayLength() > 0 && root[0].ValueKind == JsonValueKind.Object ? Keys(root[0]) : "")}}}]";
        var parts = new List<string> { Keys(root) };
        foreach (var p in root.EnumerateObject().Where(p => p.Name != "details"))
        {
            if (p.Value.ValueKind == JsonValueKind.Object) parts.Add($"{p.Name}{{{Keys(p.Value)}}}");
            else if (p.Value.ValueKind == JsonValueKind.Array && p.Value.GetArrayLength() > 0 && p.Value[0].ValueKind == JsonValueKind.Object)
                parts.Add($"{p.Name}[{{{Keys(p.Value[0])}}}]");
        }
        return string.Join(" | ", parts);
    }

    private static void CheckKeys(string verb, string[] args, string stdout)
    {
        string name = RunName(verb, args);
        Assert.True(s_keys.TryGetValue(name, out var expected), $"dse {name} --json: no pinned keys (add its line to s_keys)");
        using var doc = JsonDocument.Parse(stdout);
        Assert.True(expected == ShapeOf(doc.RootElement), $"dse {name} --json changed its keys:\n  was: {expected}\n  now: {ShapeOf(doc.RootElement)}");
    }

    // A check finding (ProblemView, unchanged since 553dff2; the scenario's images have none): its keys, and its severity
    // as the camelCase word, through Json and through the generated context called directly.
    [Fact]
    public void A_finding_keeps_its_keys_and_a_direct_context_call_writes_the_same_style()
    {
        var finding = new ProblemView(CheckSeverity.Leak, "/x.qcow2", "refcount block", 65536, "cluster 3 is not referenced");
        foreach (var text in new[] { Json.Serialize(finding), JsonSerializer.Serialize(finding, JsonContext.Default.ProblemView) })
        {
            using var doc = JsonDocument.Parse(text);
            Assert.Equal("severity,image,structure,fileOffset,message", ShapeOf(doc.RootElement));
            Assert.Equal("leak", doc.RootElement.GetProperty("severity").GetString());
        }
        using var compact = JsonDocument.Parse(JsonSerializer.Serialize(new CompactCommand.CompactView("/x.vhdx", 1, 2, 3, 4), JsonContext.Default.CompactView));
        Assert.Equal("image,sizeBefore,sizeAfter,bytesWritten,bytesZero", ShapeOf(compact.RootElement));
    }

    // A link a merge (or a snapshot delete) left: the elements of keptLinks, which the scenario's runs leave empty
    // (removedLinks holds plain paths), through Json and through the generated context called directly.
    [Fact]
    public void A_kept_link_keeps_its_keys()
    {
        var kept = new KeptLink("/vms/top.qcow2", "it now leads to /other.qcow2, not to the merged /layers/top.qcow2");
        foreach (var text in new[] { Json.Serialize(kept), JsonSerializer.Serialize(kept, JsonContext.Default.KeptLink) })
        {
            using var doc = JsonDocument.Parse(text);
            Assert.Equal("link,reason", ShapeOf(doc.RootElement));
            Assert.Equal(kept.Reason, doc.RootElement.GetProperty("reason").GetString());
        }
    }

    // README "JSON output": enum values are camelCase words. Every enum any document holds (the generated context lists
    // each type of the graph), every value, in Json's style and in the context's own.
    [Fact]
    public void Every_enum_in_a_document_is_a_camelCase_word()
    {
        var enums = typeof(JsonContext).GetProperties()
            .Where(p => typeof(JsonTypeInfo).IsAssignableFrom(p.PropertyType))
            .Select(p => ((JsonTypeInfo)p.GetValue(JsonContext.Default)!).Type)
            .Where(t => t.IsEnum).ToList();
        Assert.Contains(typeof(CheckSeverity), enums);
        foreach (var type in enums)
            foreach (var value in Enum.GetValues(type))
                foreach (var options in new[] { Json.Options, JsonContext.Default.Options })
                {
                    using var doc = JsonDocument.Parse(JsonSerializer.Serialize(value, type, options));
                    Assert.True(doc.RootElement.ValueKind == JsonValueKind.String && CamelCase().IsMatch(doc.RootElement.GetString()!),
                        $"{type.Name}.{value} is written {doc.RootElement.GetRawText()}, not a camelCase word");
                }
    }
}
