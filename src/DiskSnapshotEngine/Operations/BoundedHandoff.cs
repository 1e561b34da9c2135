namespace DiskSnapshotEngine.Operations;

/// <summary>
/// A bounded queue between one producer thread and one consumer thread that blocks instead of spinning.
/// The copy loops hand over a few megabyte-sized pieces at a time; on a 2-core machine the thread pool's
/// spin-then-park handoff (what an awaited channel ends up using) burns the core the other side needs,
/// tens of thousands of sched_yield calls per gigabyte. Here a waiting side sleeps on the monitor at once.
/// </summary>
internal sealed class BoundedHandoff<T>
{
    private readonly Queue<T> _items;
    private readonly int _capacity;
    private readonly object _gate = new();
    private bool _completed;
    private bool _aborted;
    private Exception? _fault;

    public BoundedHandoff(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _capacity = capacity;
        _items = new Queue<T>(capacity);
    }

    /// <summary>Adds an item, waiting while the queue is full. False when the consumer has aborted (the item was not taken).</summary>
    public bool TryAdd(T item)
    {
        lock (_gate)
        {
            while (_items.Count >= _capacity && !_aborted) Monitor.Wait(_gate);
            if (_aborted) return false;
            _items.Enqueue(item);
            Monitor.PulseAll(_gate);
            return true;
        }
    }

    /// <summary>
    /// Takes the next item, waiting while the queue is empty. False once the producer completed and everything
    /// was taken, or when aborted. Rethrows the producer's failure after the items queued before it.
    /// </summary>
    public bool TryTake(out T item)
    {
        lock (_gate)
        {
            while (_items.Count == 0 && !_completed && !_aborted) Monitor.Wait(_gate);
            if (!_aborted && _items.TryDequeue(out item!))
            {
                Monitor.PulseAll(_gate);
                return true;
            }
            item = default!;
            if (_fault is not null && !_aborted) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(_fault);
            return false;
        }
    }

    /// <summary>The producer is done; <paramref name="fault"/> is what stopped it early, if anything.</summary>
    public void Complete(Exception? fault = null)
    {
        lock (_gate)
        {
            _completed = true;
            _fault ??= fault;
            Monitor.PulseAll(_gate);
        }
    }

    /// <summary>Stops both sides: waiting calls return false. Items still queued can be drained with <see cref="TryDrain"/>.</summary>
    public void Abort()
    {
        lock (_gate)
        {
            _aborted = true;
            Monitor.PulseAll(_gate);
        }
    }

    /// <summary>Removes one queued item without waiting, for cleanup after an abort.</summary>
    public bool TryDrain(out T item)
    {
        lock (_gate) return _items.TryDequeue(out item!);
    }
}

/// <summary>Runs the two sides of a <see cref="BoundedHandoff{T}"/>: each gets its own thread, since both block in system calls.</summary>
internal static class DedicatedThread
{
    public static Task Run(Action body) =>
        Task.Factory.StartNew(body, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
}
