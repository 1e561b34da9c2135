namespace DiskSnapshotEngine.Block;

/// <summary>
/// What a child records to find and verify its parent, in format-neutral terms.
/// VHDX: <see cref="Id"/> = page 83 virtual disk id, <see cref="Version"/> = DataWriteGuid (what parent_linkage holds).
/// VDI: <see cref="Id"/> = uuidCreate (what uuidLinkage holds), <see cref="Version"/> = uuidModify (what uuidParentModify holds).
/// </summary>
/// <param name="Id">Stable identity of the image.</param>
/// <param name="Version">Changes whenever the visible content changes.</param>
public readonly record struct ImageIdentity(Guid Id, Guid Version);

/// <summary>How a differencing layer names its parent.</summary>
/// <param name="CandidatePaths">Absolute paths to try, in the order the format says (VHDX: relative_path resolved against the child's folder, volume_path, absolute_win32_path; VDI: dse's locator, relative then absolute, only hints that <paramref name="ParentId"/> verifies). Empty when the image names no path.</param>
/// <param name="ParentId">When set, the parent is the image whose <see cref="ImageIdentity.Id"/> equals this (VDI uuidLinkage); the chain may search folders for it.</param>
/// <param name="ParentVersion">The parent's <see cref="ImageIdentity.Version"/> when the child was linked (VHDX parent_linkage, VDI uuidParentModify); null when the format records none (qcow2 names its backing file by path only), and then no version check is possible.</param>
/// <param name="AlternateParentVersion">A second accepted version (VHDX parent_linkage2), or null.</param>
/// <param name="VersionName">Name of the field holding <paramref name="ParentVersion"/>, for error messages ("parent_linkage", "uuidParentModify").</param>
/// <param name="ParentFormat">The parent's format when the child records it (qcow2 backing_fmt): the parent is opened as that format, never probed; null to probe.</param>
public sealed record ParentLink(
    IReadOnlyList<string> CandidatePaths,
    Guid? ParentId,
    Guid? ParentVersion,
    Guid? AlternateParentVersion,
    string VersionName,
    ImageFormat? ParentFormat = null);

/// <summary>What a new or relinked child records about its parent, taken from the opened parent layer.</summary>
/// <param name="Path">Absolute path of the parent file.</param>
/// <param name="Format">Parent's format.</param>
/// <param name="Identity">Parent's identity at link time.</param>
/// <param name="VirtualSize">Parent's virtual size (a child must match it).</param>
/// <param name="LogicalSectorSize">Parent's logical sector size (a child must match it).</param>
public sealed record ParentDescriptor(string Path, ImageFormat Format, ImageIdentity Identity, long VirtualSize, int LogicalSectorSize)
{
    /// <summary>Describes an opened layer as a parent.</summary>
    public static ParentDescriptor Of(IDiskLayer parent) =>
        new(parent.Path, parent.Format, parent.Identity, parent.VirtualSize, parent.LogicalSectorSize);
}
