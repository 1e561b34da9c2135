using System.Security.Cryptography;
using System.Text;
using DiskSnapshotEngine.Block;

namespace DiskSnapshotEngine.Hypervisors.Model;

/// <summary>
/// Builds a <see cref="VmDiskState"/> from an opened chain (top to base), no snapshots. A disk with a snapshot catalog
/// gets its state from <see cref="SnapshotCatalogState"/>, which uses the same ids.
/// </summary>
public static class VmDiskStateBuilder
{
    /// <summary>
    /// The chain as a straight line of media, base at the root and the chain's top as the current medium.
    /// Ids are the images' own: VDI uuidCreate and the VHDX page 83 virtual disk id (both are <see cref="ImageIdentity.Id"/>).
    /// For VDI this is the UUID VirtualBox itself reads from the header, and a registry entry must match it. VirtualBox's
    /// VHDX backend (src/VBox/Storage/VHDX.cpp) reads no UUID at all: its capabilities are VD_CAP_FILE | VD_CAP_VFS
    /// (no VD_CAP_UUID) and its get-UUID callback is the "not supported" stub, so the media registry entry is the only
    /// id VirtualBox has for a VHDX. We give it the page 83 virtual disk id so the id is stable across registrations and
    /// is the one Hyper-V and other tools show for the same file.
    /// A raw file has no identity, so it gets a stable name-based id derived from its absolute path.
    /// </summary>
    public static VmDiskState FromChain(DiskChain chain)
    {
        ArgumentNullException.ThrowIfNull(chain);
        MediumInfo? child = null;
        // Layers run top to base; build from the top so each parent can hold its (single) child.
        foreach (var layer in chain.Layers)
        {
            var id = layer.Identity.Id == Guid.Empty ? PathDerivedId(layer.Path) : layer.Identity.Id;
            child = new MediumInfo(id, layer.Path, MediumFormats.Of(layer.Format), layer.VirtualSize,
                child is null ? Array.Empty<MediumInfo>() : new[] { child }, Seals.Of(layer));
        }
        var root = child!;
        var top = chain.Layers[0];
        var topId = top.Identity.Id == Guid.Empty ? PathDerivedId(top.Path) : top.Identity.Id;
        var state = new VmDiskState(root, topId, Array.Empty<SnapshotInfo>(), null);
        state.Validate();
        return state;
    }

    /// <summary>A name-based (RFC 4122 version 5 style) id from a path, so registering the same raw file twice gives the same id.</summary>
    internal static Guid PathDerivedId(string path)
    {
        Span<byte> hash = stackalloc byte[20];
        SHA1.HashData(Encoding.UTF8.GetBytes("dse-raw:" + System.IO.Path.GetFullPath(path)), hash);
        var bytes = hash[..16].ToArray();
        bytes[6] = (byte)((bytes[6] & 0x0F) | 0x50); // version 5
        bytes[8] = (byte)((bytes[8] & 0x3F) | 0x80); // RFC 4122 variant
        return new Guid(bytes, bigEndian: true);
    }
}
