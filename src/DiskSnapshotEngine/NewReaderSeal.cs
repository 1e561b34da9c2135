using DiskSnapshotEngine.Block;
using DiskSnapshotEngine.Errors;
using DiskSnapshotEngine.IO;

namespace DiskSnapshotEngine;

/// <summary>
/// The seal a parent needs once a new image reads through it (a linked clone, a rebased image), decided once from the
/// parent as the caller opened it, and written by <see cref="Apply"/> once the new image is in place. One decision for
/// <see cref="DiskImage"/>'s linked clones and <see cref="Operations.Rebase"/>.
/// </summary>
internal sealed class NewReaderSeal
{
    private readonly ImageIdentity _identity;
    private readonly bool _sealable;
    private readonly SealReasons _seal, _add;
    private readonly SoleChild _sole;
    private readonly Guid _childId;

    private NewReaderSeal(IDiskLayer parent, SealReasons add, Guid childId)
    {
        (Path, Format, _identity, _sealable) = (parent.Path, parent.Format, parent.Identity, parent is ISealableLayer);
        (_seal, _sole, _add, _childId) = (Seals.Of(parent), Seals.SoleChildOf(parent), add, childId);
    }

    /// <summary>The parent's full path.</summary>
    public string Path { get; }

    /// <summary>The parent's format.</summary>
    public ImageFormat Format { get; }

    /// <summary>
    /// The seal <paramref name="parent"/> needs when a new image with id <paramref name="childId"/> (<see cref="Guid.Empty"/>:
    /// not made from it, never recorded as its sole clone) reads through it and the seal gains <paramref name="add"/>
    /// (see <see cref="Seals.WithNewChild"/>).
    /// </summary>
    /// <remarks>
    /// The clone is recorded only when nobody may read the parent without being allowed to write it
    /// (<see cref="FileNode.ReadableByNonWriters"/>): such a reader's clones cannot record themselves, so the record
    /// would call this clone the only one when it is not.
    /// </remarks>
    public static NewReaderSeal For(IDiskLayer parent, SealReasons add, Guid childId) =>
        new(parent, add, childId != Guid.Empty && FileNode.ReadableByNonWriters(parent.Path) is null ? childId : Guid.Empty);

    /// <summary>
    /// Writes the seal when it must change (a parent that already has the reasons and no sole clone recorded is not
    /// written again, so further clones can be made while others run on it), unless this process cannot write the
    /// parent (a read-only mount, its mode, an immutable file): what stops this write stops every later one too, and
    /// the outcome says why.
    /// </summary>
    /// <returns>What became of the parent's seal.</returns>
    /// <exception cref="DiskImageException">Locked (another process has the parent open), ParentMismatch, Io: the seal is as it was.</exception>
    public ParentSeal Apply(Func<string, bool, IImageFile>? fileOpener)
    {
        if (!_sealable) return Outcome(ParentSealOutcome.NoMark, null);
        if (Seals.WithNewChild(_seal, _sole, _add, _childId) == (_seal, _sole)) return Outcome(ParentSealOutcome.Sealed, null);
        if (Seals.WhyNotWritable(Path) is { } why)
            return Outcome(_seal == SealReasons.None ? ParentSealOutcome.LeftUnsealed
                : _sole.IsKnown ? ParentSealOutcome.SoleChildStale // the new image is not the one recorded
                : ParentSealOutcome.Sealed, why);
        Write(fileOpener);
        return Outcome(ParentSealOutcome.Sealed, null);
    }

    /// <summary>The outcome when <see cref="Apply"/> failed with <paramref name="reason"/> after the new image was linked.</summary>
    public ParentSeal Failed(string reason) => Outcome(ParentSealOutcome.SealFailed, reason);

    private ParentSeal Outcome(ParentSealOutcome outcome, string? reason) => new(Path, Format, outcome, reason);

    // Writes the seal into the parent (its content version does not change). The new seal is computed from the mark
    // read under the exclusive lock, so two clones made at once never both record themselves as the sole child.
    private void Write(Func<string, bool, IImageFile>? fileOpener)
    {
        IDiskLayer layer;
        try
        {
            layer = DiskImage.OpenLayer(Path, writable: true, fileOpener);
        }
        catch (DiskImageException e) when (e.Kind == ErrorKind.Locked)
        {
            throw new DiskImageException(ErrorKind.Locked,
                $"cannot record the new linked clone in the parent's seal: {e.Detail}; close it and try again " +
                "(a parent sealed with 'dse seal' while nothing has it open is not written by later clones)", e.Path ?? Path, inner: e);
        }
        using (layer)
        {
            if (layer.Identity != _identity)
                throw new DiskImageException(ErrorKind.ParentMismatch, "the parent changed while it was being opened", Path);
            var sealable = (ISealableLayer)layer;
            var (seal, sole) = Seals.WithNewChild(sealable.Seal, sealable.SoleChild, _add, _childId);
            sealable.SetSeal(seal, sole);
        }
    }
}
