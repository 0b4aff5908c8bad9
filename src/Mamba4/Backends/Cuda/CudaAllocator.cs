using Mamba4.Backends.Cuda.Native;
using Mamba4.Tensors;

namespace Mamba4.Backends.Cuda;

/// <summary>
/// Caching device allocator: a released block is kept in a free list by size class (<see cref="BlockPool"/>, 512 bytes
/// minimum) and handed to the next request of that class, so a steady-state step makes no cuMemAlloc. Blocks are used
/// in stream order on the device's one stream, so reuse needs no synchronisation. On an out-of-memory error the cache
/// is returned to the driver and the allocation tried once more.
/// Blocks taken while a CUDA graph is being captured belong to that graph (its replays write them): when released
/// they are held back from the cache until the graph is disposed (<see cref="CudaGraph"/>).
/// </summary>
public sealed unsafe class CudaAllocator : IStorageOwner
{
    public const long MinimumBlock = 512;

    private readonly CudaBackend _device;
    private readonly BlockPool _pool = new(MinimumBlock);
    private readonly Lock _lock = new();
    private List<(nint Pointer, long Size)>? _capturing;
    /// <summary>Blocks of live graphs → released by their tensor already (then the graph's disposal caches them).</summary>
    private readonly Dictionary<nint, bool> _graphOwned = new();

    internal CudaAllocator(CudaBackend device) => _device = device;

    public long BytesInUse => _pool.BytesInUse;
    public long BytesCached => _pool.BytesCached;
    public long PeakBytesInUse => _pool.PeakBytesInUse;
    /// <summary>cuMemAlloc calls made (pool misses).</summary>
    public long DeviceAllocations => _pool.NativeAllocations;
    /// <summary>Requests served from the cache.</summary>
    public long PoolHits => _pool.PoolHits;

    public static long SizeClass(long bytes) => BlockPool.SizeClass(bytes, MinimumBlock);

    public Storage Allocate(long bytes)
    {
        if (bytes < 0) throw new ArgumentOutOfRangeException(nameof(bytes));
        long size = SizeClass(bytes);
        nint p = _pool.Take(size, DeviceAlloc);
        lock (_lock)
            if (_capturing is not null)
            {
                _capturing.Add((p, size));
                _graphOwned[p] = false;
            }
        return new Storage(p, bytes, _device.Device, this) { Capacity = size };
    }

    private nint DeviceAlloc(long size)
    {
        _device.MakeCurrent();
        ulong ptr;
        int r = CudaDriver.cuMemAlloc(&ptr, (nuint)size);
        if (r == CudaDriver.ErrorOutOfMemory && _capturing is null)
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
        return (nint)ptr;
    }

    public void Free(Storage storage)
    {
        bool cache = true;
        lock (_lock)
            if (_graphOwned.ContainsKey(storage.Pointer))
            {
                _graphOwned[storage.Pointer] = true;
                cache = false;
            }
        _pool.Return(storage.Pointer, storage.Capacity, cache);
    }

    /// <summary>From now on, blocks taken belong to the graph being captured.</summary>
    internal void BeginCapture()
    {
        lock (_lock) _capturing = new();
    }

    /// <summary>The blocks taken since <see cref="BeginCapture"/> (the graph keeps them).</summary>
    internal List<(nint Pointer, long Size)> EndCapture()
    {
        lock (_lock)
        {
            var blocks = _capturing ?? new();
            _capturing = null;
            return blocks;
        }
    }

    /// <summary>A graph is gone (the stream has finished with it): its released blocks go to the cache, the others back to their tensors.</summary>
    internal void ReleaseGraphBlocks(List<(nint Pointer, long Size)> blocks)
    {
        lock (_lock)
            foreach (var (p, size) in blocks)
                if (_graphOwned.Remove(p, out bool released) && released) _pool.Cache(p, size);
    }

    /// <summary>Returns every cached block to the driver (waits for the stream first).</summary>
    public void Trim()
    {
        _device.MakeCurrent();
        CudaDriver.cuStreamSynchronize(_device.Stream);
        _pool.Drain(p => CudaDriver.cuMemFree((ulong)p));
    }

    public void ResetPeak() => _pool.ResetPeak();

    public override string ToString() =>
        $"{_device.Device}: in use {BytesInUse:N0} B, peak {PeakBytesInUse:N0} B, cached {BytesCached:N0} B, {DeviceAllocations} cuMemAlloc, {PoolHits} reuses";
}
