using System.Buffers;
using System.Buffers.Binary;
using System.Text.Encodings.Web;
using System.Text.Json;
using Mamba4.Tensors;

namespace Mamba4.IO;

/// <summary>
/// Reading and writing the safetensors format (Hugging Face): state dicts move between Mamba4 and
/// PyTorch/transformers with the same names, dtypes and shapes. Reading: <see cref="SafetensorsFile"/>.
/// </summary>
public static class Safetensors
{
    public static SafetensorsFile Open(string path) => SafetensorsFile.Open(path);

    public static Dictionary<string, Tensor> LoadAll(string path, DType? convertTo = null) => SafetensorsFile.LoadAll(path, convertTo);

    public static void Save(string path, IEnumerable<KeyValuePair<string, Tensor>> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        Save(path, tensors.Select(kv => (kv.Key, kv.Value)), metadata);
    }

    /// <summary>
    /// Writes <paramref name="tensors"/> (CPU tensors of any <see cref="DType"/>) to <paramref name="path"/>:
    /// the 8-byte header length, the JSON header ("__metadata__" first when given, then the tensors in
    /// the given order) padded with spaces so the data starts on an 8-byte boundary, then each tensor's
    /// bytes in the given order, back to back. The file is written to a temporary file in the same
    /// directory, flushed to disk, and renamed over <paramref name="path"/> (<see cref="AtomicFile.Write"/>): a reader
    /// sees the old file or the new one, never half of one, and a failed save leaves the old file untouched.
    /// </summary>
    /// <exception cref="ArgumentException">A duplicate or reserved name, a disposed tensor. GPU tensors are written from a host copy.</exception>
    public static void Save(string path, IEnumerable<(string Name, Tensor Tensor)> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(tensors);
        var list = tensors.ToList();
        Check(list, metadata);
        var header = BuildHeader(list, metadata);

        AtomicFile.Write(path, fs =>
        {
            fs.Write(header);
            foreach (var (_, t) in list) WriteData(fs, t);
        }, durable: true);
    }

    /// <summary>
    /// Writes a safetensors file whose tensors are produced one at a time, never all in memory: the header comes from
    /// <paramref name="entries"/> (name, type, shape), then <paramref name="writeData"/>(i, stream) writes entry i's bytes,
    /// in order; a callback that writes another number of bytes than its entry needs fails the write. Atomic and durable
    /// as <see cref="Save(string, IEnumerable{ValueTuple{string, Tensor}}, IReadOnlyDictionary{string, string}?)"/>.
    /// </summary>
    public static void SaveStreaming(string path, IReadOnlyList<SafetensorsEntry> entries, Action<int, Stream> writeData,
        IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var e in entries)
            if (e.Name == SafetensorsHeader.MetadataKey || !names.Add(e.Name))
                throw new ArgumentException($"tensor name {SafetensorsHeader.Q(e.Name)} is reserved or appears twice", nameof(entries));
        var header = BuildHeader(entries, metadata);
        AtomicFile.Write(path, fs =>
        {
            fs.Write(header);
            for (int i = 0; i < entries.Count; i++)
            {
                long start = fs.Position;
                writeData(i, fs);
                if (fs.Position - start != entries[i].ByteLength)
                    throw new InvalidOperationException($"{path}: tensor '{entries[i].Name}' got {fs.Position - start} bytes, expected {entries[i].ByteLength}");
            }
        }, durable: true);
    }

    private static void Check(List<(string Name, Tensor Tensor)> list, IReadOnlyDictionary<string, string>? metadata)
    {
        var first = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < list.Count; i++)
        {
            var (name, t) = list[i];
            if (name is null) throw new ArgumentException($"tensor #{i} has no name", nameof(list));
            var q = SafetensorsHeader.Q(name);
            if (name == SafetensorsHeader.MetadataKey)
                throw new ArgumentException($"tensor #{i} is named '{SafetensorsHeader.MetadataKey}', which safetensors reserves for metadata", "tensors");
            if (!first.TryAdd(name, i))
                throw new ArgumentException($"duplicate tensor name {q} (entries #{first[name]} and #{i}); names must be unique", "tensors");
            if (t is null) throw new ArgumentException($"tensor {q} is null", "tensors");
            if (t.IsDisposed) throw new ArgumentException($"tensor {q} was disposed", "tensors");
        }
        if (metadata is not null)
            foreach (var (k, v) in metadata)
                if (k is null || v is null) throw new ArgumentException("metadata keys and values must not be null", nameof(metadata));
    }

    /// <summary>Length prefix + JSON + space padding to a multiple of 8 bytes.</summary>
    private static byte[] BuildHeader(List<(string Name, Tensor Tensor)> list, IReadOnlyDictionary<string, string>? metadata) =>
        BuildHeader(list.Select(t => new SafetensorsEntry(t.Name, t.Tensor.DType, t.Tensor.Shape)).ToList(), metadata);

    private static byte[] BuildHeader(IReadOnlyList<SafetensorsEntry> list, IReadOnlyDictionary<string, string>? metadata)
    {
        var json = new ArrayBufferWriter<byte>();
        // Relaxed escaping keeps non-ASCII names readable (still valid JSON; this is not HTML).
        using (var w = new Utf8JsonWriter(json, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                w.WriteStartObject(SafetensorsHeader.MetadataKey);
                foreach (var (k, v) in metadata) w.WriteString(k, v);
                w.WriteEndObject();
            }
            long offset = 0;
            foreach (var t in list)
            {
                try { w.WriteStartObject(t.Name); }
                catch (ArgumentException e) { throw new ArgumentException($"tensor name {SafetensorsHeader.Q(t.Name)} cannot be written as JSON: {e.Message}", "tensors", e); }
                w.WriteString("dtype", t.DType.SafetensorsName());
                w.WriteStartArray("shape");
                foreach (var d in t.Shape.Dims) w.WriteNumberValue(d);
                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(offset);
                w.WriteNumberValue(offset + t.ByteLength);
                w.WriteEndArray();
                w.WriteEndObject();
                offset += t.ByteLength;
            }
            w.WriteEndObject();
        }
        int n = json.WrittenCount;
        int padded = n + (8 - (8 + n) % 8) % 8;
        var header = new byte[8 + padded];
        BinaryPrimitives.WriteUInt64LittleEndian(header, (ulong)padded);
        json.WrittenSpan.CopyTo(header.AsSpan(8));
        header.AsSpan(8 + n).Fill((byte)' ');
        return header;
    }

    private static unsafe void WriteData(Stream fs, Tensor t)
    {
        if (!t.Device.IsCpu)
        {
            using var host = t.To(Device.Cpu);   // a GPU tensor is written from a host copy
            WriteData(fs, host);
            return;
        }
        byte* p = (byte*)t.DataPointer;
        for (long done = 0, total = t.ByteLength; done < total;)
        {
            int chunk = (int)Math.Min(1 << 30, total - done);
            fs.Write(new ReadOnlySpan<byte>(p + done, chunk));
            done += chunk;
        }
    }
}

/// <summary>One tensor of a file written by <see cref="Safetensors.SaveStreaming"/>: its name, type and shape (the bytes come later).</summary>
public readonly record struct SafetensorsEntry(string Name, DType DType, Shape Shape)
{
    public long ByteLength => Shape.NumElements * DType.ElementSize();
}
