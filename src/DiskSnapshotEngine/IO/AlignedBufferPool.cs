using System.Buffers;
using System.Collections.Concurrent;
using System.Runtime.InteropServices;

namespace DiskSnapshotEngine.IO;

/// <summary>
/// Pooled 4 KiB-aligned native buffers. Large extent copies reuse a handful of buffers instead of allocating
/// on the managed heap (no LOH churn, no GC pauses), and alignment keeps them usable for direct I/O.
/// The pool keeps at most a few buffers per size class, so memory stays bounded whatever the image size.
/// </summary>
internal static class AlignedBufferPool
{
    /// <summary>Alignment of every buffer (the largest logical sector size we support).</summary>
    public const int Alignment = 4096;
    private const int MaxPooledPerClass = 8;
    // One bag per power-of-two size, indexed by its exponent (an array, not a dictionary keyed by int, whose
    // instantiation ReadyToRun leaves to the JIT at every start).
    private static readonly ConcurrentBag<AlignedBuffer>?[] s_pools = new ConcurrentBag<AlignedBuffer>?[32];

    /// <summary>Rents a buffer of at least <paramref name="minimumLength"/> bytes (rounded up to a power of two, at least 4 KiB). Dispose returns it.</summary>
    public static AlignedBuffer Rent(int minimumLength)
    {
        int size = (int)Math.Max(Alignment, System.Numerics.BitOperations.RoundUpToPowerOf2((uint)Math.Max(1, minimumLength)));
        if (s_pools[System.Numerics.BitOperations.Log2((uint)size)] is { } bag && bag.TryTake(out var buffer))
        {
            buffer.Rented();
            return buffer;
        }
        return new AlignedBuffer(size);
    }

    internal static void Return(AlignedBuffer buffer)
    {
        ref var slot = ref s_pools[System.Numerics.BitOperations.Log2((uint)buffer.Capacity)];
        var bag = Volatile.Read(ref slot) ?? Interlocked.CompareExchange(ref slot, new ConcurrentBag<AlignedBuffer>(), null) ?? slot!;
        if (bag.Count < MaxPooledPerClass) bag.Add(buffer);
        else buffer.Free();
    }
}

/// <summary>A native, aligned buffer from <see cref="AlignedBufferPool"/>; dispose to return it.</summary>
internal sealed unsafe class AlignedBuffer : MemoryManager<byte>
{
    private byte* _pointer;
    private int _returned;

    internal AlignedBuffer(int capacity)
    {
        Capacity = capacity;
        _pointer = (byte*)NativeMemory.AlignedAlloc((nuint)capacity, AlignedBufferPool.Alignment);
    }

    /// <summary>Usable size in bytes.</summary>
    public int Capacity { get; }

    /// <summary>The whole buffer as a span.</summary>
    public Span<byte> Span => new(_pointer, Capacity);

    internal void Rented() => _returned = 0;

    public override Span<byte> GetSpan() => Span;

    public override MemoryHandle Pin(int elementIndex = 0) => new(_pointer + elementIndex);

    public override void Unpin() { }

    internal void Free()
    {
        if (_pointer != null)
        {
            NativeMemory.AlignedFree(_pointer);
            _pointer = null;
        }
    }

    protected override void Dispose(bool disposing)
    {
        if (Interlocked.Exchange(ref _returned, 1) == 0) AlignedBufferPool.Return(this);
    }
}
