namespace Mamba4.Tensors;

/// <summary>Whoever hands out a <see cref="Storage"/> takes it back when its last reference is released.</summary>
public interface IStorageOwner
{
    void Free(Storage storage);
}

/// <summary>
/// A block of device (or host) memory shared by a tensor and its views. Reference counted: a view
/// adds a reference; the block goes back to its owner (the pooled allocator, or a memory map) when
/// the last tensor that uses it is disposed.
/// </summary>
public sealed class Storage
{
    private int _references = 1;
    private readonly IStorageOwner _owner;

    public Storage(nint pointer, long byteLength, Device device, IStorageOwner owner)
    {
        Pointer = pointer;
        ByteLength = byteLength;
        Device = device;
        _owner = owner;
    }

    public nint Pointer { get; }
    public long ByteLength { get; }
    /// <summary>The size class the allocator gave (may exceed <see cref="ByteLength"/>).</summary>
    public long Capacity { get; init; }
    public Device Device { get; }
    public bool IsReleased => Volatile.Read(ref _references) <= 0;

    internal void AddReference()
    {
        if (Interlocked.Increment(ref _references) <= 1)
            throw new ObjectDisposedException(nameof(Storage), "storage was already released");
    }

    internal void Release()
    {
        var left = Interlocked.Decrement(ref _references);
        if (left == 0) _owner.Free(this);
        else if (left < 0) throw new ObjectDisposedException(nameof(Storage), "storage released twice");
    }
}
