using DiskSnapshotEngine.Operations;

namespace DiskSnapshotEngine.Tests.Operations;

/// <summary>The blocking queue between the copy loops' reader and writer threads.</summary>
public sealed class BoundedHandoffTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task Items_arrive_in_order_and_the_queue_never_holds_more_than_its_capacity()
    {
        var handoff = new BoundedHandoff<int>(3);
        int inQueue = 0, maxInQueue = 0;
        var producer = Task.Factory.StartNew(() =>
        {
            for (int i = 0; i < 5000; i++)
            {
                Assert.True(handoff.TryAdd(i));
                int now = Interlocked.Increment(ref inQueue);
                InterlockedMax(ref maxInQueue, now);
            }
            handoff.Complete();
        }, TaskCreationOptions.LongRunning);
        var taken = new List<int>();
        var consumer = Task.Factory.StartNew(() =>
        {
            while (handoff.TryTake(out int item))
            {
                Interlocked.Decrement(ref inQueue);
                taken.Add(item);
                if (item % 500 == 0) Thread.Sleep(2);
            }
        }, TaskCreationOptions.LongRunning);
        await Task.WhenAll(producer, consumer).WaitAsync(Bound);
        Assert.Equal(Enumerable.Range(0, 5000), taken);
        // Counted after TryAdd returns, so one more than the capacity can be seen in the instant between the two.
        Assert.InRange(maxInQueue, 1, 4);
    }

    [Fact]
    public async Task A_producer_failure_reaches_the_consumer_after_the_items_queued_before_it()
    {
        var handoff = new BoundedHandoff<int>(4);
        Assert.True(handoff.TryAdd(1));
        Assert.True(handoff.TryAdd(2));
        handoff.Complete(new InvalidDataException("bad block"));
        Assert.True(handoff.TryTake(out int a));
        Assert.True(handoff.TryTake(out int b));
        Assert.Equal((1, 2), (a, b));
        var e = Assert.Throws<InvalidDataException>(() => handoff.TryTake(out _));
        Assert.Equal("bad block", e.Message);
        await Task.CompletedTask;
    }

    [Fact]
    public async Task Abort_wakes_a_producer_blocked_on_a_full_queue_and_a_consumer_blocked_on_an_empty_one()
    {
        var full = new BoundedHandoff<int>(1);
        Assert.True(full.TryAdd(1));
        var blockedProducer = Task.Factory.StartNew(() => full.TryAdd(2), TaskCreationOptions.LongRunning);
        var empty = new BoundedHandoff<int>(1);
        var blockedConsumer = Task.Factory.StartNew(() => empty.TryTake(out _), TaskCreationOptions.LongRunning);
        await Task.Delay(100);
        Assert.False(blockedProducer.IsCompleted);
        Assert.False(blockedConsumer.IsCompleted);
        full.Abort();
        empty.Abort();
        Assert.False(await blockedProducer.WaitAsync(Bound));
        Assert.False(await blockedConsumer.WaitAsync(Bound));
        // What was queued before the abort can still be drained for cleanup.
        Assert.True(full.TryDrain(out int left));
        Assert.Equal(1, left);
        Assert.False(full.TryDrain(out _));
    }

    private static void InterlockedMax(ref int target, int value)
    {
        int seen;
        while ((seen = Volatile.Read(ref target)) < value && Interlocked.CompareExchange(ref target, value, seen) != seen) { }
    }
}
