using System.IO.MemoryMappedFiles;
using Mamba4.Tensors;

namespace Mamba4.IO;

/// <summary>
/// A whole file mapped copy-on-write, shared by a <see cref="SafetensorsFile"/> and every zero-copy
/// view tensor made from it. Reference counted: the file holds one reference, each view's
/// <see cref="Storage"/> another; the map is unmapped when the last of them lets go.
/// Copy-on-write means a write through a view changes a private copy of that page, never the file
/// (a read-only map would turn such a write into a crash).
/// </summary>
internal sealed unsafe class MappedFileOwner : IStorageOwner
{
    private readonly MemoryMappedFile _file;
    private readonly MemoryMappedViewAccessor _view;
    private int _references = 1;

    public MappedFileOwner(MemoryMappedFile file, long length)
    {
        _file = file;
        _view = file.CreateViewAccessor(0, length, MemoryMappedFileAccess.CopyOnWrite);
        byte* p = null;
        _view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
        Base = p + _view.PointerOffset;
        Length = length;
    }

    /// <summary>Address of file byte 0 (page aligned).</summary>
    public byte* Base { get; }
    public long Length { get; }

    /// <summary>Adds a reference unless the map is already gone.</summary>
    public bool TryAddReference()
    {
        while (true)
        {
            int r = Volatile.Read(ref _references);
            if (r <= 0) return false;
            if (Interlocked.CompareExchange(ref _references, r + 1, r) == r) return true;
        }
    }

    public void Release()
    {
        if (Interlocked.Decrement(ref _references) != 0) return;
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _file.Dispose();
    }

    void IStorageOwner.Free(Storage storage) => Release();
}
