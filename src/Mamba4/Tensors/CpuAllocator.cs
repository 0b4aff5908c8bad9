using System.Runtime.InteropServices;

namespace Mamba4.Tensors;

/// <summary>
/// Native host memory, 64-byte aligned, pooled by size class (<see cref="BlockPool"/>). A freed block is kept for the
/// next request of its class, so a steady-state training step reuses the previous step's blocks.
/// </summary>
public sealed unsafe class CpuAllocator : IStorageOwner
{
    public const int Alignment = 64;
    public static readonly CpuAllocator Shared = new();

    private readonly BlockPool _pool = new(Alignment);

    public long BytesInUse => _pool.BytesInUse;
    public long BytesCached => _pool.BytesCached;
    public long PeakBytesInUse => _pool.PeakBytesInUse;
    /// <summary>Native allocations made (pool misses).</summary>
    public long NativeAllocations => _pool.NativeAllocations;
    /// <summary>Requests served from the pool.</summary>
    public long PoolHits => _pool.PoolHits;

    public static long SizeClass(long bytes) => BlockPool.SizeClass(bytes, Alignment);

    public Storage Allocate(long bytes)
    {
        if (bytes < 0) throw new ArgumentOutOfRangeException(nameof(bytes));
        long size = SizeClass(bytes);
        nint p = _pool.Take(size, s =>
        {
            nint q = (nint)NativeMemory.AlignedAlloc((nuint)s, Alignment);
            return q != 0 ? q : throw new OutOfMemoryException($"could not allocate {s} bytes of host memory");
        });
        return new Storage(p, bytes, Device.Cpu, this) { Capacity = size };
    }

    public void Free(Storage storage) => _pool.Return(storage.Pointer, storage.Capacity);

    /// <summary>Returns every cached block to the operating system.</summary>
    public void Trim() => _pool.Drain(p => NativeMemory.AlignedFree((void*)p));

    public void ResetPeak() => _pool.ResetPeak();
}
