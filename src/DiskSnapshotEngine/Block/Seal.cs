using DiskSnapshotEngine.Errors;

namespace DiskSnapshotEngine.Block;

/// <summary>
/// Why an image is sealed. A sealed image is one other images read through: no dse verb changes what it reads
/// until the user unseals it. The mark is stored in the image file itself (VHDX: a user metadata item; VDI: a record
/// after the header), so it holds wherever the image's children live and whoever runs dse.
/// </summary>
[Flags]
public enum SealReasons
{
    /// <summary>Not sealed.</summary>
    None = 0,

    /// <summary>
    /// A golden image: linked clones may read through it from any folder (set by <c>create --parent</c>,
    /// <c>clone --linked</c> and <c>dse seal</c>). Only <c>dse unseal</c> (or a verb's <c>--force</c>) lifts it.
    /// </summary>
    Golden = 1,

    /// <summary>
    /// A frozen layer of a disk's dse snapshots (set by <c>snapshot create</c>). The snapshot verbs still merge and
    /// remove such layers as their catalog says; every other verb treats the layer as sealed.
    /// </summary>
    Snapshot = 2,
}

/// <summary>Which sealed images a writable open accepts (<see cref="OpenOptions.Sealed"/>).</summary>
public enum SealPolicy
{
    /// <summary>Refuse any sealed image (ReadOnly, exit 15). The default of every verb.</summary>
    Refuse,

    /// <summary>
    /// Accept images sealed only as dse snapshot layers (<see cref="SealReasons.Snapshot"/>): what the snapshot verbs
    /// pass for the layers of their own catalog, which they change while keeping the catalog right. A layer that is
    /// also <see cref="SealReasons.Golden"/> is still refused: clones elsewhere may read through it.
    /// </summary>
    SnapshotLayers,

    /// <summary>Accept any sealed image: the user forced the change (<c>--force</c>).</summary>
    Override,
}

/// <summary>A layer whose file carries a seal mark (VHDX, VDI).</summary>
public interface ISealableLayer
{
    /// <summary>The seal recorded in the file.</summary>
    SealReasons Seal { get; }

    /// <summary>The linked clone the seal records as the only one dse made of this image (see <see cref="Block.SoleChild"/>).</summary>
    SoleChild SoleChild { get; }

    /// <summary>
    /// The id a parent's seal records when this image is its sole linked clone: <see cref="ImageIdentity.Id"/>, or for a
    /// format without one (qcow2) the id dse keeps in the file; <see cref="Guid.Empty"/> when the file has none.
    /// </summary>
    Guid CloneId { get; }

    /// <summary>
    /// Records <paramref name="seal"/> (and its <paramref name="soleChild"/>, unknown by default) in the file, durably
    /// and so that a crash leaves the old or the new mark. The content version (<see cref="ImageIdentity.Version"/>)
    /// never changes: children stay linked.
    /// </summary>
    /// <exception cref="DiskImageException">ReadOnly (the layer is open read-only), Unsupported (the file has no room for the mark), Io.</exception>
    void SetSeal(SealReasons seal, SoleChild soleChild = default);
}

/// <summary>
/// The seal rules. <see cref="DiskImage.Open(string, OpenOptions?)"/> applies them to the layer it opens for writing
/// (with <see cref="OpenOptions.Sealed"/>), merge to every layer it changes or removes, the snapshot verbs to the
/// layers they merge or discard. Single-layer writable opens that change no content (relinking a child, the seal
/// itself, repair) do not go through them.
/// </summary>
public static class Seals
{
    /// <summary>The seal of a layer (none for formats that carry no mark, such as raw).</summary>
    public static SealReasons Of(IDiskLayer layer) => layer is ISealableLayer s ? s.Seal : SealReasons.None;

    /// <summary>The sole linked clone a layer's seal records (unknown for formats that carry no mark).</summary>
    public static SoleChild SoleChildOf(IDiskLayer layer) => layer is ISealableLayer s && s.Seal != SealReasons.None ? s.SoleChild : SoleChild.Unknown;

    /// <summary>The id a parent's seal records for <paramref name="child"/> (<see cref="ISealableLayer.CloneId"/>).</summary>
    public static Guid CloneIdOf(IDiskLayer child) => child is ISealableLayer s ? s.CloneId : child.Identity.Id;

    /// <summary>True when <paramref name="parent"/>'s seal records <paramref name="child"/> as the only linked clone dse made of it.</summary>
    public static bool IsSoleChild(IDiskLayer parent, IDiskLayer child) => SoleChildOf(parent).Is(CloneIdOf(child));

    /// <summary>
    /// The seal a parent sealed as <paramref name="seal"/> (recording <paramref name="sole"/>) gets when a new child with
    /// id <paramref name="childId"/> is made that adds <paramref name="add"/>: the first child of an unsealed image is
    /// recorded as its sole child; any later one (or a seal the user set) leaves the record unknown.
    /// </summary>
    public static (SealReasons Seal, SoleChild Sole) WithNewChild(SealReasons seal, SoleChild sole, SealReasons add, Guid childId) =>
        seal == SealReasons.None ? (add, add == SealReasons.None ? SoleChild.Unknown : SoleChild.Of(childId)) : (seal | add, SoleChild.Unknown);

    /// <summary>
    /// Why this process cannot write the seal of the image at <paramref name="path"/> (a read-only file system, a mode
    /// that denies this user, an immutable file, a symbolic link dse does not write through: fs.protected_symlinks), or
    /// null when it can. A linked clone of such a parent leaves the seal
    /// unwritten: what keeps the file from being written keeps every dse verb from changing it too (ReadOnly, exit 15).
    /// </summary>
    public static string? WhyNotWritable(string path) => IO.FileNode.WhyNotWritable(path);

    /// <summary>
    /// Why a format carries no seal. VHD: the footer and the dynamic header have no field for it; their reserved bytes
    /// are specified as zeros and covered by the checksum, and what Hyper-V does with other values cannot be tested
    /// here, so dse refuses rather than write a mark it cannot vouch for. Raw: no metadata at all.
    /// </summary>
    public static string NoMark(ImageFormat format) => format switch
    {
        ImageFormat.Vhd => "a VHD cannot carry dse's seal (its footer and dynamic header have no field for it: their reserved bytes must be zeros); " +
            "make the golden image a VHDX, VDI or qcow2 (dse clone), or keep the file from changing with chattr +i",
        _ => $"a {format.ToString().ToLowerInvariant()} image cannot carry dse's seal (it has no metadata); make the golden image a VHDX, VDI or qcow2 (dse clone)",
    };

    /// <summary>Human form of a seal: "golden image", "snapshot layer", both, or "not sealed".</summary>
    public static string Describe(SealReasons seal) => seal switch
    {
        SealReasons.None => "not sealed",
        SealReasons.Golden => "golden image (linked clones may read through it)",
        SealReasons.Snapshot => "frozen layer of dse snapshots",
        _ => "golden image (linked clones may read through it) and frozen layer of dse snapshots",
    };

    /// <summary>True when <paramref name="policy"/> lets a verb change an image sealed with <paramref name="seal"/>.</summary>
    public static bool Allows(SealPolicy policy, SealReasons seal) => seal == SealReasons.None || policy switch
    {
        SealPolicy.Override => true,
        SealPolicy.SnapshotLayers => (seal & SealReasons.Golden) == 0,
        _ => false,
    };

    /// <summary>
    /// Refuses to <paramref name="action"/> (for example "write into it") a layer whose seal <paramref name="policy"/>
    /// does not accept. The refusal depends only on the mark in the file, never on where children are.
    /// </summary>
    /// <param name="layer">The layer to change.</param>
    /// <param name="policy">Which seals the verb accepts.</param>
    /// <param name="action">What the verb would do, for the message.</param>
    /// <param name="waived">Reasons this action may ignore (merge: golden, when the merged layer above is the sole child the seal records).</param>
    /// <exception cref="DiskImageException">ReadOnly naming the seal and how to lift it.</exception>
    public static void Check(IDiskLayer layer, SealPolicy policy, string action, SealReasons waived = SealReasons.None)
    {
        var seal = Of(layer) & ~waived;
        if (Allows(policy, seal)) return;
        throw new DiskImageException(ErrorKind.ReadOnly,
            $"cannot {action}: the image is sealed as a {Describe(seal)}; {SealAdvice.For(layer.Path, seal)}", layer.Path);
    }
}
