using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.IO.MemoryMappedFiles;
using Microsoft.Win32.SafeHandles;
using Mamba4.Tensors;

namespace Mamba4.IO;

/// <summary>
/// A safetensors file opened for reading: the header is parsed and validated in full by
/// <see cref="Open"/> (see <see cref="SafetensorsHeader"/> for the rules), the file is memory-mapped,
/// and tensors are read on demand.
/// <code>
/// using var f = SafetensorsFile.Open("model.safetensors");
/// using var w = f.Get("backbone.embeddings.weight", DType.F32);   // a copy in pooled, 64-byte aligned memory
/// using var v = f.GetView("backbone.norm_f.weight");              // zero-copy, backed by the map
/// </code>
/// Layout: 8-byte little-endian header length N, N bytes of UTF-8 JSON, then the data region;
/// every tensor's data_offsets are relative to the data region.
/// <para>A file that is truncated or rewritten in place by another process while it is mapped can still
/// fault on access (SIGBUS): validation covers the file as it was when opened. Writers here replace
/// files by rename, which is safe.</para>
/// </summary>
public sealed unsafe class SafetensorsFile : IDisposable
{
    /// <summary>Largest header accepted (the reference implementation's limit): a hostile length field
    /// cannot make us allocate more.</summary>
    public const long MaxHeaderLength = 100_000_000;

    private readonly MappedFileOwner _map;
    private readonly List<SafetensorsTensorInfo> _tensors;
    private readonly Dictionary<string, int> _index;
    private int _disposed;

    private SafetensorsFile(string path, long fileLength, long headerLength, SafetensorsHeader.Result header, MappedFileOwner map)
    {
        Path = path;
        FileLength = fileLength;
        HeaderLength = headerLength;
        _tensors = header.Tensors;
        _index = new Dictionary<string, int>(_tensors.Count, StringComparer.Ordinal);
        for (int i = 0; i < _tensors.Count; i++) _index[_tensors[i].Name] = i;
        Tensors = _tensors.AsReadOnly();
        Names = _tensors.ConvertAll(t => t.Name).AsReadOnly();
        Metadata = header.Metadata.AsReadOnly();
        _map = map;
    }

    /// <summary>The path as given to <see cref="Open"/>.</summary>
    public string Path { get; }
    public long FileLength { get; }
    /// <summary>N, the JSON header's length in bytes (padding included).</summary>
    public long HeaderLength { get; }
    /// <summary>File offset of the data region (8 + N).</summary>
    public long DataOffset => 8 + HeaderLength;
    /// <summary>Tensor names in the order the header lists them.</summary>
    public IReadOnlyList<string> Names { get; }
    /// <summary>Every tensor entry in header order.</summary>
    public IReadOnlyList<SafetensorsTensorInfo> Tensors { get; }
    /// <summary>The "__metadata__" object (empty when absent).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }
    public int Count => _tensors.Count;

    /// <summary>Opens, validates and maps <paramref name="path"/>. Format errors are
    /// <see cref="SafetensorsFormatException"/>; a missing or unreadable file is the usual IO exception.</summary>
    public static SafetensorsFile Open(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete);
        MemoryMappedFile? mmf = null;
        try
        {
            long length = RandomAccess.GetLength(handle);
            if (length < 8)
                throw new SafetensorsFormatException(path, 0, $"the file is {length} bytes long, shorter than the 8-byte header length that begins every safetensors file");
            Span<byte> prefix = stackalloc byte[8];
            ReadExactly(path, handle, prefix, 0);
            ulong n = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
            if (n > (ulong)(length - 8))
                throw new SafetensorsFormatException(path, 0, $"the header length field says {n} bytes, but the file is {length} bytes long, " +
                    $"so at most {length - 8} bytes can follow it" + (n > MaxHeaderLength ? $" (and headers are limited to {MaxHeaderLength} bytes)" : ""));
            if (n > MaxHeaderLength)
                throw new SafetensorsFormatException(path, 0, $"the header length {n} exceeds the limit of {MaxHeaderLength} bytes");
            var header = new byte[(int)n];
            ReadExactly(path, handle, header, 8);
            var parsed = SafetensorsHeader.Parse(path, header, length - 8 - (long)n);

            // Map exactly the validated length: if the file shrank meanwhile, mapping fails instead of faulting later.
            mmf = MemoryMappedFile.CreateFromFile(handle, null, length, MemoryMappedFileAccess.CopyOnWrite, HandleInheritability.None, leaveOpen: false);
            var map = new MappedFileOwner(mmf, length);
            return new SafetensorsFile(path, length, (long)n, parsed, map);
        }
        catch
        {
            if (mmf is not null) mmf.Dispose();
            else handle.Dispose();
            throw;
        }
    }

    private static void ReadExactly(string path, SafeFileHandle handle, Span<byte> buffer, long offset)
    {
        int done = 0;
        while (done < buffer.Length)
        {
            int n = RandomAccess.Read(handle, buffer[done..], offset + done);
            if (n == 0)
                throw new SafetensorsFormatException(path, offset + done, $"the file ended while reading {buffer.Length} bytes at byte {offset} (was it truncated while being opened?)");
            done += n;
        }
    }

    public bool Contains(string name) => _index.ContainsKey(name);

    public bool TryGetInfo(string name, [MaybeNullWhen(false)] out SafetensorsTensorInfo info)
    {
        if (_index.TryGetValue(name, out int i)) { info = _tensors[i]; return true; }
        info = null;
        return false;
    }

    /// <summary>The dtype, shape and byte range of tensor <paramref name="name"/>.</summary>
    public SafetensorsTensorInfo Info(string name)
    {
        if (TryGetInfo(name, out var info)) return info;
        var near = _tensors.Select(t => t.Name).Where(n => n.Contains(name, StringComparison.OrdinalIgnoreCase) || name.Contains(n, StringComparison.OrdinalIgnoreCase)).Take(3).ToList();
        throw new KeyNotFoundException($"no tensor named {SafetensorsHeader.Q(name)} in '{Path}' ({_tensors.Count} tensors" +
                                       (near.Count > 0 ? "; similar: " + string.Join(", ", near.Select(SafetensorsHeader.Q)) : "") + ")");
    }

    /// <summary>
    /// A new CPU tensor (pooled, 64-byte aligned) holding a copy of tensor <paramref name="name"/>,
    /// converted to <paramref name="convertTo"/> when given (the same conversion as <see cref="Tensor.To(DType, Device?)"/>).
    /// </summary>
    public Tensor Get(string name, DType? convertTo = null)
    {
        ThrowIfDisposed();
        var info = Info(name);
        var dtype = Require(info);
        var target = convertTo ?? dtype;
        if (!_map.TryAddReference()) throw Disposed();
        try
        {
            var t = Tensor.Empty(info.Shape, target);
            try
            {
                byte* src = _map.Base + info.FileOffset;
                if (target == dtype) Buffer.MemoryCopy(src, (void*)t.DataPointer, info.ByteLength, info.ByteLength);
                else DTypeConvert.Convert(src, dtype, (void*)t.DataPointer, target, info.NumElements);
            }
            catch
            {
                t.Dispose();
                throw;
            }
            t.Name = name;
            return t;
        }
        finally { _map.Release(); }
    }

    /// <summary>
    /// A zero-copy tensor whose storage is the mapped file itself. It keeps the map alive after this
    /// file is disposed, until the view (and every view of it) is disposed. Writes to it go to private
    /// copy-on-write pages and never reach the file.
    /// <para>Alignment: the data sits at file offset 8 + N + begin. Writers here (and Hugging Face's) pad
    /// the header so the data region starts on an 8-byte boundary, but a tensor after an odd-sized one
    /// can start at any address, and nothing guarantees the 64-byte alignment of pooled storage. Use
    /// <see cref="Get"/> where a kernel needs aligned memory.</para>
    /// </summary>
    public Tensor GetView(string name)
    {
        ThrowIfDisposed();
        var info = Info(name);
        var dtype = Require(info);
        if (!_map.TryAddReference()) throw Disposed();
        try
        {
            var storage = new Storage((nint)(_map.Base + info.FileOffset), info.ByteLength, Device.Cpu, _map);
            return new Tensor(storage, 0, info.Shape, dtype) { Name = name };
        }
        catch
        {
            _map.Release();
            throw;
        }
    }

    /// <summary>Reads every tensor of <paramref name="path"/> into new CPU tensors (optionally converted);
    /// the file is closed before returning. The caller owns (and disposes) the tensors.</summary>
    public static Dictionary<string, Tensor> LoadAll(string path, DType? convertTo = null)
    {
        using var f = Open(path);
        var result = new Dictionary<string, Tensor>(f.Count, StringComparer.Ordinal);
        try
        {
            foreach (var name in f.Names) result[name] = f.Get(name, convertTo);
        }
        catch
        {
            foreach (var t in result.Values) t.Dispose();
            throw;
        }
        return result;
    }

    private DType Require(SafetensorsTensorInfo info) =>
        info.DType ?? throw new NotSupportedException($"tensor {SafetensorsHeader.Q(info.Name)} in '{Path}' has dtype {info.DTypeName}, " +
                                                      $"which Mamba4 cannot hold (supported: {SafetensorsDTypes.SupportedList})");

    private void ThrowIfDisposed()
    {
        if (Volatile.Read(ref _disposed) != 0) throw Disposed();
    }

    private ObjectDisposedException Disposed() => new(nameof(SafetensorsFile), $"the safetensors file '{Path}' was disposed");

    /// <summary>Drops this object's reference to the map; views made from it stay valid.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0) _map.Release();
    }

    public override string ToString() => $"SafetensorsFile('{Path}', {Count} tensors, {FileLength} bytes)";
}
