using Mamba4.Backends.Cuda.Native;
using Mamba4.Tensors;

namespace Mamba4.Backends.Cuda;

/// <summary>
/// Caching device allocator: a released block is kept in a free list by size class and handed to the
/// next request of that class, so a steady-state step makes no cuMemAlloc. Blocks are used in stream
/// order on the device's one stream, so reuse needs no synchronisation. Size classes as the CPU pool
/// (powers of two split in four, at most 25% slack), 512 bytes minimum. On an out-of-memory error the
/// cache is returned to the driver and the allocation tried once more.
/// </summary>
public sealed unsafe class CudaAllocator : IStorageOwner
{
    public const long MinimumBlock = 512;

    private readonly CudaBackend _device;
    private readonly Dictionary<long, Stack<nint>> _free = new();
    private readonly Lock _lock = new();
    private long _inUse, _cached, _peak, _allocations, _reuses;

    internal CudaAllocator(CudaBackend device) => _device = device;

    public long BytesInUse => Interlocked.Read(ref _inUse);
    public long BytesCached => Interlocked.Read(ref _cached);
    public long PeakBytesInUse => Interlocked.Read(ref _peak);
    /// <summary>cuMemAlloc calls made (pool misses).</summary>
    public long DeviceAllocations => Interlocked.Read(ref _allocations);
    /// <summary>Requests served from the cache.</summary>
    public long PoolHits => Interlocked.Read(ref _reuses);

    public static long SizeClass(long bytes) => CpuAllocator.SizeClass(bytes, MinimumBlock);

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
        if (p == 0) p = DeviceAlloc(size);
        var inUse = Interlocked.Add(ref _inUse, size);
        long peak;
        while (inUse > (peak = Interlocked.Read(ref _peak)) && Interlocked.CompareExchange(ref _peak, inUse, peak) != peak) { }
        return new Storage(p, bytes, _device.Device, this) { Capacity = size };
    }

    private nint DeviceAlloc(long size)
    {
        _device.MakeCurrent();
        ulong ptr;
        int r = CudaDriver.cuMemAlloc(&ptr, (nuint)size);
        if (r == CudaDriver.ErrorOutOfMemory)
        {
            Trim();
            r = CudaDriver.cuMemAlloc(&ptr, (nuint)size);
        }
        if (r == CudaDriver.ErrorOutOfMemory)
        {
            nuint free, total;
            CudaDriver.cuMemGetInfo(&free, &total);
            throw new CudaOutOfMemoryException(
                $"{_device.Device}: out of device memory allocating {size:N0} bytes (in use by tensors {BytesInUse:N0}, " +
                $"peak {PeakBytesInUse:N0}; the driver reports {(long)free:N0} free of {(long)total:N0})");
        }
        CudaDriver.Check(r, $"cuMemAlloc({size:N0} bytes) on {_device.Device}");
        Interlocked.Increment(ref _allocations);
        return (nint)ptr;
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

    /// <summary>Returns every cached block to the driver (waits for the stream first).</summary>
    public void Trim()
    {
        _device.MakeCurrent();
        CudaDriver.cuStreamSynchronize(_device.Stream);
        lock (_lock)
        {
            foreach (var stack in _free.Values)
                while (stack.Count > 0) CudaDriver.cuMemFree((ulong)stack.Pop());
            _free.Clear();
            _cached = 0;
        }
    }

    public void ResetPeak() => Interlocked.Exchange(ref _peak, Interlocked.Read(ref _inUse));

    public override string ToString() =>
        $"{_device.Device}: in use {BytesInUse:N0} B, peak {PeakBytesInUse:N0} B, cached {BytesCached:N0} B, {DeviceAllocations} cuMemAlloc, {PoolHits} reuses";
}
