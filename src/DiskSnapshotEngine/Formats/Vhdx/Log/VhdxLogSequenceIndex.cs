namespace DiskSnapshotEngine.Formats.Vhdx.Log;

/// <summary>
/// Every valid entry has at most one successor (the valid entry starting where it ends, with the next sequence
/// number), so the entries form a forest whose edges point to successors. A head's sequence is valid when the
/// entry at its Tail reaches the head by successors, i.e. the head is an ancestor of (or is) that entry, and the
/// entries in between fit in the ring once. Ancestry is an interval test on a depth-first numbering.
/// </summary>
internal sealed class VhdxLogSequenceIndex
{
    private readonly Dictionary<uint, int> _indexOf = new();
    private readonly int[] _enter, _leave;
    private readonly long[] _lengthToRoot; // sum of EntryLength from an entry to the end of its successor chain
    private readonly uint _logLength;

    public VhdxLogSequenceIndex(Dictionary<uint, LogEntryHeader> valid, uint logLength)
    {
        _logLength = logLength;
        var offsets = valid.Keys.ToArray();
        int n = offsets.Length;
        for (int i = 0; i < n; i++) _indexOf[offsets[i]] = i;
        var successor = new int[n];
        var children = new List<int>?[n];
        for (int i = 0; i < n; i++)
        {
            var e = valid[offsets[i]];
            uint next = (uint)((offsets[i] + (ulong)e.EntryLength) % logLength);
            successor[i] = e.SequenceNumber < ulong.MaxValue && _indexOf.TryGetValue(next, out int j)
                && valid[next].SequenceNumber == e.SequenceNumber + 1 ? j : -1;
            if (successor[i] >= 0) (children[successor[i]] ??= new List<int>()).Add(i);
        }
        // Successors have higher sequence numbers, so descending order computes a successor's sum first.
        _lengthToRoot = new long[n];
        foreach (int i in Enumerable.Range(0, n).OrderByDescending(i => valid[offsets[i]].SequenceNumber))
            _lengthToRoot[i] = valid[offsets[i]].EntryLength + (successor[i] >= 0 ? _lengthToRoot[successor[i]] : 0);
        _enter = new int[n];
        _leave = new int[n];
        int clock = 0;
        var stack = new Stack<(int Node, bool Done)>();
        for (int root = 0; root < n; root++)
        {
            if (successor[root] >= 0) continue;
            stack.Push((root, false));
            while (stack.Count > 0)
            {
                var (node, done) = stack.Pop();
                if (done) { _leave[node] = clock++; continue; }
                _enter[node] = clock++;
                stack.Push((node, true));
                if (children[node] is { } kids) foreach (int k in kids) stack.Push((k, false));
            }
        }
    }

    public bool IsValidHead(uint headOffset, in LogEntryHeader head)
    {
        if (!_indexOf.TryGetValue(head.Tail, out int t)) return false;
        int h = _indexOf[headOffset];
        bool reaches = _enter[h] <= _enter[t] && _leave[t] <= _leave[h];
        return reaches && _lengthToRoot[t] - _lengthToRoot[h] + head.EntryLength <= _logLength;
    }
}
