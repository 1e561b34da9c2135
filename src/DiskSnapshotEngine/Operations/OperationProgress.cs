namespace DiskSnapshotEngine.Operations;

/// <summary>
/// Progress of a long operation (export, clone, merge), reported through <see cref="IProgress{T}"/>.
/// Reports are cheap to make and may come from any thread; the receiver decides how often to render them.
/// </summary>
/// <param name="Phase">What is being done now, in a few words ("exporting", "merging layer 2").</param>
/// <param name="Done">Units finished so far (bytes of the virtual disk unless the phase says otherwise).</param>
/// <param name="Total">Units in the whole phase; <paramref name="Done"/> reaches it when the phase ends.</param>
public sealed record OperationProgress(string Phase, long Done, long Total);
