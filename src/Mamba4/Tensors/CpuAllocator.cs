using System.Runtime.InteropServices;

namespace Mamba4.Tensors;

/// <summary>
/// Native host memory, 64-byte aligned, pooled by size class. A freed block is kept for the next
/// request of its class, so a steady-state training step reuses the previous step's blocks.
/// Size classes: powers of two split in four (at most 25% slack), 64 bytes minimum.
/// </summary>
public sealed unsafe class CpuAllocator : IStorageOwner
{
    public const int Alignment = 64;
    public static readonly CpuAllocator Shared = new();

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

    public static long SizeClass(long bytes) => SizeClass(bytes, Alignment);

    /// <summary>The pool's size classes (shared with the device allocators): powers of two split in four, at least <paramref name="minimum"/>.</summary>
    public static long SizeClass(long bytes, long minimum)
    {
        if (bytes <= minimum) return minimum;
        long power = 1L << (int)(63 - long.LeadingZeroCount(bytes));
        if (power == bytes) return bytes;
        long step = Math.Max(minimum, power / 4);
        return (bytes + step - 1) / step * step;
    }

    public Storage Allocate(long bytes)
    {
        if (bytes < 0) throw new ArgumentOutOfRangeException(nameof(bytes));
        long size = SizeClass(bytes);
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
            p = (nint)NativeMemory.AlignedAlloc((nuint)size, Alignment);
            if (p == 0) throw new OutOfMemoryException($"could not allocate {size} bytes of host memory");
            Interlocked.Increment(ref _allocations);
        }
        var inUse = Interlocked.Add(ref _inUse, size);
        long peak;
        while (inUse > (peak = Interlocked.Read(ref _peak)) && Interlocked.CompareExchange(ref _peak, inUse, peak) != peak) { }
        return new Storage(p, bytes, Device.Cpu, this) { Capacity = size };
    }

    public void Free(Storage storage)
    {
        Interlocked.Add(ref _inUse, -storage.Capacity);
        lock (_lock)
        {
            if (!_free.TryGetValue(storage.Capacity, out var stack)) _free[storage.Capacity] = stack = new Stack<nint>();
            stack.Push(storage.Pointer);
            _cached += storage.Capacity;
        }
    }

    /// <summary>Returns every cached block to the operating system.</summary>
    public void Trim()
    {
        lock (_lock)
        {
            foreach (var stack in _free.Values)
                while (stack.Count > 0) NativeMemory.AlignedFree((void*)stack.Pop());
            _free.Clear();
            _cached = 0;
        }
    }

    public void ResetPeak() => Interlocked.Exchange(ref _peak, Interlocked.Read(ref _inUse));
}
