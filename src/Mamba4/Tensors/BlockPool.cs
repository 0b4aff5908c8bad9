namespace Mamba4.Tensors;

/// <summary>
/// The bookkeeping of a caching allocator, shared by the host (<see cref="CpuAllocator"/>) and device allocators: free
/// blocks kept in a stack per size class (powers of two split in four, at most 25% slack, at least a minimum), and the
/// statistics (bytes in use, peak, cached, native allocations, reuses). The owner makes and frees the native blocks.
/// </summary>
public sealed class BlockPool(long minimum)
{
    private readonly Dictionary<long, Stack<nint>> _free = new();
    private readonly Lock _lock = new();
    private long _inUse, _cached, _peak, _allocations, _reuses;

    public long BytesInUse => Interlocked.Read(ref _inUse);
    public long BytesCached => Interlocked.Read(ref _cached);
    public long PeakBytesInUse => Interlocked.Read(ref _peak);
    /// <summary>Native allocations made (pool misses).</summary>
    public long NativeAllocations => Interlocked.Read(ref _allocations);
    /// <summary>Requests served from the pool.</summary>
    public long PoolHits => Interlocked.Read(ref _reuses);

    public long SizeClass(long bytes) => SizeClass(bytes, minimum);

    /// <summary>Powers of two split in four, at least <paramref name="min"/>.</summary>
    public static long SizeClass(long bytes, long min)
    {
        if (bytes <= min) return min;
        long power = 1L << (int)(63 - long.LeadingZeroCount(bytes));
        if (power == bytes) return bytes;
        long step = Math.Max(min, power / 4);
        return (bytes + step - 1) / step * step;
    }

    /// <summary>A block of the size class <paramref name="size"/>: a cached one, else <paramref name="allocate"/>(size). Counted as in use.</summary>
    public nint Take(long size, Func<long, nint> allocate)
    {
        nint p = 0;
        lock (_lock)
        {
            if (_free.TryGetValue(size, out var stack) && stack.Count > 0)
            {
                p = stack.Pop();
                _cached -= size;
                _reuses++;
            }
        }
        if (p == 0)
        {
            p = allocate(size);
            Interlocked.Increment(ref _allocations);
        }
        var inUse = Interlocked.Add(ref _inUse, size);
        long peak;
        while (inUse > (peak = Interlocked.Read(ref _peak)) && Interlocked.CompareExchange(ref _peak, inUse, peak) != peak) { }
        return p;
    }

    /// <summary>No longer in use; <paramref name="cache"/>: keep it for the next request of its class (else the owner keeps it).</summary>
    public void Return(nint pointer, long size, bool cache = true)
    {
        Interlocked.Add(ref _inUse, -size);
        if (cache) Cache(pointer, size);
    }

    /// <summary>Puts a block that is not in use into the cache.</summary>
    public void Cache(nint pointer, long size)
    {
        lock (_lock)
        {
            if (!_free.TryGetValue(size, out var stack)) _free[size] = stack = new Stack<nint>();
            stack.Push(pointer);
            _cached += size;
        }
    }

    /// <summary>Empties the cache, handing every block to <paramref name="free"/>.</summary>
    public void Drain(Action<nint> free)
    {
        lock (_lock)
        {
            foreach (var stack in _free.Values)
                while (stack.Count > 0) free(stack.Pop());
            _free.Clear();
            _cached = 0;
        }
    }

    public void ResetPeak() => Interlocked.Exchange(ref _peak, Interlocked.Read(ref _inUse));
}
