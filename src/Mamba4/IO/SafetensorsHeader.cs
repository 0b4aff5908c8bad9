using System.Text;
using System.Text.Json;
using System.Text.Unicode;
using Mamba4.Tensors;

namespace Mamba4.IO;

/// <summary>One tensor entry of a safetensors header.</summary>
/// <param name="Name">The tensor's name (state-dict key).</param>
/// <param name="DTypeName">The dtype as the file spells it ("F32", "BF16", ...).</param>
/// <param name="DType">The Mamba4 type for it; null for a valid safetensors dtype Mamba4 cannot hold (BOOL, I8, U16, ...).</param>
/// <param name="Shape">Dimensions (empty for a scalar).</param>
/// <param name="DataBegin">Start of the tensor's bytes, relative to the data region (the byte after the header).</param>
/// <param name="DataEnd">End (exclusive), relative to the data region.</param>
/// <param name="FileOffset">Start of the tensor's bytes from the start of the file.</param>
public sealed record SafetensorsTensorInfo(string Name, string DTypeName, DType? DType, Shape Shape, long DataBegin, long DataEnd, long FileOffset)
{
    public long ByteLength => DataEnd - DataBegin;
    public long NumElements => Shape.NumElements;
}

/// <summary>
/// Parses and strictly validates a safetensors header (the JSON after the 8-byte length) against
/// the size of the data region that follows it. Rules (all errors are <see cref="SafetensorsFormatException"/>):
/// <list type="bullet">
/// <item>valid UTF-8; a JSON object that begins at the first byte (as the reference implementation
///   demands); trailing JSON whitespace (the writers' space padding) is allowed, nothing else;</item>
/// <item>no key twice (tensor names, "__metadata__", fields of an entry, metadata keys), compared after unescaping;</item>
/// <item>"__metadata__": an object of string values (or null);</item>
/// <item>every other key is a tensor: an object with exactly "dtype" (a known safetensors dtype name),
///   "shape" (an array of integers 0..2^31-1) and "data_offsets" (an array of two integers [begin, end]);</item>
/// <item>begin ≤ end ≤ data length; end − begin = product(shape) × element size;</item>
/// <item>the tensors tile the data region exactly: sorted by begin, each starts where the previous
///   ended, the first at 0, the last ends at the end of the file. No overlap, no hole, no trailing
///   bytes (the reference implementation rejects holes and trailing bytes too). Zero-size tensors may
///   sit at any boundary between tensors.</item>
/// </list>
/// </summary>
internal static class SafetensorsHeader
{
    public const string MetadataKey = "__metadata__";

    public sealed record Result(List<SafetensorsTensorInfo> Tensors, Dictionary<string, string> Metadata);

    private sealed record Entry(SafetensorsTensorInfo Info, long OffsetsPosition);

    /// <param name="path">For error messages.</param>
    /// <param name="header">The header bytes (file bytes [8, 8 + N)).</param>
    /// <param name="dataLength">Bytes after the header (file length − 8 − N).</param>
    public static Result Parse(string path, ReadOnlySpan<byte> header, long dataLength)
    {
        var p = new Parser(path, header.Length);
        if (header.Length == 0) throw p.Error(8, "the header is empty; expected a JSON object of tensor entries");
        if (!Utf8.IsValid(header))
        {
            int bad = FirstInvalidUtf8(header);
            throw p.Error(8 + bad, $"the header is not valid UTF-8 (byte 0x{header[bad]:X2} at header position {bad})");
        }
        if (header[0] != (byte)'{')
            throw p.Error(8, $"the header must be a JSON object beginning with '{{' at its first byte, found {DescribeByte(header[0])}");

        List<Entry> entries;
        Dictionary<string, string> metadata;
        try
        {
            (entries, metadata) = p.ParseRoot(header);
        }
        catch (JsonException e)
        {
            throw p.Error(JsonErrorOffset(header, e), "the header is not valid JSON: " + TrimJsonMessage(e.Message), e);
        }
        Validate(p, entries, dataLength);
        return new Result(entries.ConvertAll(e => e.Info), metadata);
    }

    // ---- layout validation ----

    private static void Validate(Parser p, List<Entry> entries, long dataLength)
    {
        long dataStart = 8L + p.HeaderLength;
        foreach (var (t, pos) in entries)
        {
            string range = $"[{t.DataBegin}, {t.DataEnd}]";
            if (t.DataBegin > t.DataEnd)
                throw p.Error(pos, $"tensor {Q(t.Name)}: data_offsets {range} have begin after end");
            if (t.DataEnd > dataLength)
                throw p.Error(pos, $"tensor {Q(t.Name)}: data_offsets {range} extend past the end of the data region, " +
                                   $"which holds {dataLength} bytes (file bytes [{dataStart}, {dataStart + dataLength}))");
        }
        foreach (var (t, pos) in entries)
        {
            SafetensorsDTypes.TryGet(t.DTypeName, out int bits, out _);
            long expected = ExpectedBytes(p, t, bits, pos);
            if (expected != t.ByteLength)
                throw p.Error(pos, $"tensor {Q(t.Name)} ({t.DTypeName}, shape {t.Shape}) needs {expected} bytes, " +
                                   $"but its data_offsets [{t.DataBegin}, {t.DataEnd}] hold {t.ByteLength}");
        }

        var sorted = entries.Select(e => e.Info).OrderBy(t => t.DataBegin).ThenBy(t => t.DataEnd).ToList();
        long at = 0;
        SafetensorsTensorInfo? previous = null;
        foreach (var t in sorted)
        {
            if (t.DataBegin < at)
                throw p.Error(dataStart + t.DataBegin, $"tensor {Q(t.Name)} data_offsets [{t.DataBegin}, {t.DataEnd}] overlap " +
                                                       $"tensor {Q(previous!.Name)} [{previous.DataBegin}, {previous.DataEnd}]");
            if (t.DataBegin > at)
                throw p.Error(dataStart + at, $"hole in the data region: bytes [{at}, {t.DataBegin}) are not covered by any tensor " +
                                              (previous is null ? $"(before tensor {Q(t.Name)})" : $"(between tensor {Q(previous.Name)} and tensor {Q(t.Name)})") +
                                              "; the tensors must cover the data contiguously");
            at = t.DataEnd;
            previous = t;
        }
        if (at != dataLength)
            throw p.Error(dataStart + at, $"{dataLength - at} bytes of data after " +
                                          (previous is null ? "the header, which lists no tensors" : $"the last tensor {Q(previous.Name)} (which ends at data offset {at})") +
                                          "; every byte after the header must belong to a tensor");
    }

    private static long ExpectedBytes(Parser p, SafetensorsTensorInfo t, int bits, long pos)
    {
        var dims = t.Shape.Dims;
        foreach (var d in dims) if (d == 0) return 0;
        try
        {
            long n = 1;
            foreach (var d in dims) n = checked(n * d);
            long totalBits = checked(n * bits);
            if (totalBits % 8 != 0)
                throw p.Error(pos, $"tensor {Q(t.Name)} ({t.DTypeName}, shape {t.Shape}) does not fill a whole number of bytes");
            return totalBits / 8;
        }
        catch (OverflowException)
        {
            throw p.Error(pos, $"tensor {Q(t.Name)}: shape {t.Shape} is too large (its byte size overflows a 64-bit integer)");
        }
    }

    // ---- JSON structure ----

    /// <summary>A ref struct cannot live in a lambda or a field of a class, so the parse state sits here
    /// and the reader is passed by reference.</summary>
    private sealed class Parser(string path, int headerLength)
    {
        public int HeaderLength { get; } = headerLength;

        public SafetensorsFormatException Error(long offset, string detail, Exception? inner = null) => new(path, offset, detail, inner);

        private void Next(ref Utf8JsonReader r)
        {
            if (!r.Read()) throw Error(8 + HeaderLength, "the header ends before its JSON object is closed");
        }

        private long Pos(ref Utf8JsonReader r) => 8 + r.TokenStartIndex;

        /// <summary>A string token's value. The bytes are valid UTF-8 (checked up front), but a \u escape can
        /// still decode to a lone UTF-16 surrogate, which no .NET string should hold.</summary>
        private string Str(ref Utf8JsonReader r)
        {
            try { return r.GetString()!; }
            catch (InvalidOperationException e)
            {
                throw Error(Pos(ref r), $"the string {Q(Encoding.UTF8.GetString(r.ValueSpan))} has a \\u escape that decodes to a lone UTF-16 surrogate ({e.Message})", e);
            }
        }

        public (List<Entry>, Dictionary<string, string>) ParseRoot(ReadOnlySpan<byte> header)
        {
            var r = new Utf8JsonReader(header, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Disallow, AllowTrailingCommas = false });
            Next(ref r);
            if (r.TokenType != JsonTokenType.StartObject) throw Error(Pos(ref r), "the header must be a JSON object");
            var entries = new List<Entry>();
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            var names = new HashSet<string>(StringComparer.Ordinal);
            while (true)
            {
                Next(ref r);
                if (r.TokenType == JsonTokenType.EndObject) break;
                long keyPos = Pos(ref r);
                string name = Str(ref r);
                if (!names.Add(name))
                    throw Error(keyPos, name == MetadataKey ? $"duplicate key '{MetadataKey}'" : $"duplicate tensor name {Q(name)} (each name may appear once)");
                if (name == MetadataKey) ParseMetadata(ref r, metadata);
                else entries.Add(ParseEntry(ref r, name));
            }
            if (r.Read()) throw Error(Pos(ref r), "unexpected content after the header's JSON object");
            return (entries, metadata);
        }

        private void ParseMetadata(ref Utf8JsonReader r, Dictionary<string, string> metadata)
        {
            Next(ref r);
            if (r.TokenType == JsonTokenType.Null) return; // the reference accepts null for "no metadata"
            if (r.TokenType != JsonTokenType.StartObject)
                throw Error(Pos(ref r), $"'{MetadataKey}' must be a JSON object of string values, found {Describe(ref r)}");
            while (true)
            {
                Next(ref r);
                if (r.TokenType == JsonTokenType.EndObject) return;
                long keyPos = Pos(ref r);
                string key = Str(ref r);
                if (metadata.ContainsKey(key)) throw Error(keyPos, $"duplicate key {Q(key)} in '{MetadataKey}'");
                Next(ref r);
                if (r.TokenType != JsonTokenType.String)
                    throw Error(Pos(ref r), $"'{MetadataKey}' value of {Q(key)} must be a string, found {Describe(ref r)}");
                metadata[key] = Str(ref r);
            }
        }

        private Entry ParseEntry(ref Utf8JsonReader r, string name)
        {
            Next(ref r);
            long entryPos = Pos(ref r);
            if (r.TokenType != JsonTokenType.StartObject)
                throw Error(entryPos, $"tensor {Q(name)}: expected a JSON object with \"dtype\", \"shape\" and \"data_offsets\", found {Describe(ref r)}");
            string? dtype = null;
            List<int>? shape = null;
            ulong[]? offsets = null;
            long dtypePos = 0, offsetsPos = 0;
            while (true)
            {
                Next(ref r);
                if (r.TokenType == JsonTokenType.EndObject) break;
                long fieldPos = Pos(ref r);
                string field = Str(ref r);
                bool repeated = field switch { "dtype" => dtype != null, "shape" => shape != null, "data_offsets" => offsets != null, _ => false };
                if (repeated) throw Error(fieldPos, $"tensor {Q(name)}: field \"{field}\" appears more than once");
                Next(ref r);
                switch (field)
                {
                    case "dtype":
                        dtypePos = Pos(ref r);
                        if (r.TokenType != JsonTokenType.String)
                            throw Error(dtypePos, $"tensor {Q(name)}: \"dtype\" must be a string such as \"F32\", found {Describe(ref r)}");
                        dtype = Str(ref r);
                        break;
                    case "shape":
                        if (r.TokenType != JsonTokenType.StartArray)
                            throw Error(Pos(ref r), $"tensor {Q(name)}: \"shape\" must be an array of non-negative integers, found {Describe(ref r)}");
                        shape = new List<int>();
                        while (true)
                        {
                            Next(ref r);
                            if (r.TokenType == JsonTokenType.EndArray) break;
                            long dimPos = Pos(ref r);
                            ulong d = ReadUInt(ref r, name, "shape dimension");
                            if (d > int.MaxValue)
                                throw Error(dimPos, $"tensor {Q(name)}: shape dimension {d} exceeds {int.MaxValue}, the largest dimension Mamba4 supports");
                            shape.Add((int)d);
                        }
                        break;
                    case "data_offsets":
                        offsetsPos = Pos(ref r);
                        if (r.TokenType != JsonTokenType.StartArray)
                            throw Error(offsetsPos, $"tensor {Q(name)}: \"data_offsets\" must be an array of 2 integers [begin, end], found {Describe(ref r)}");
                        var list = new List<ulong>(2);
                        while (true)
                        {
                            Next(ref r);
                            if (r.TokenType == JsonTokenType.EndArray) break;
                            if (list.Count == 2)
                                throw Error(Pos(ref r), $"tensor {Q(name)}: \"data_offsets\" must hold exactly 2 integers [begin, end], found more");
                            list.Add(ReadUInt(ref r, name, "data_offsets value"));
                        }
                        if (list.Count != 2)
                            throw Error(offsetsPos, $"tensor {Q(name)}: \"data_offsets\" must hold exactly 2 integers [begin, end], found {list.Count}");
                        offsets = list.ToArray();
                        break;
                    default:
                        throw Error(fieldPos, $"tensor {Q(name)}: unknown field {Q(field)} (an entry has only \"dtype\", \"shape\" and \"data_offsets\")");
                }
            }
            if (dtype is null) throw Error(entryPos, $"tensor {Q(name)}: missing \"dtype\"");
            if (shape is null) throw Error(entryPos, $"tensor {Q(name)}: missing \"shape\"");
            if (offsets is null) throw Error(entryPos, $"tensor {Q(name)}: missing \"data_offsets\"");
            if (!SafetensorsDTypes.TryGet(dtype, out _, out var dt))
                throw Error(dtypePos, $"tensor {Q(name)}: unknown dtype {Q(dtype)} (expected a safetensors dtype: {SafetensorsDTypes.SupportedList}, or BOOL, I8, I16, U16, U32, U64, F8_*, ...)");
            // Offsets beyond long range are certainly beyond the data; clamp so the range check reports them.
            long begin = (long)Math.Min(offsets[0], long.MaxValue), end = (long)Math.Min(offsets[1], long.MaxValue);
            if (offsets[0] > long.MaxValue || offsets[1] > long.MaxValue)
                throw Error(offsetsPos, $"tensor {Q(name)}: data_offsets [{offsets[0]}, {offsets[1]}] extend past the end of the file");
            var info = new SafetensorsTensorInfo(name, dtype, dt, new Shape(shape.ToArray()), begin, end, 8L + HeaderLength + begin);
            return new Entry(info, offsetsPos);
        }

        private ulong ReadUInt(ref Utf8JsonReader r, string name, string what)
        {
            if (r.TokenType != JsonTokenType.Number)
                throw Error(Pos(ref r), $"tensor {Q(name)}: {what} must be a non-negative integer, found {Describe(ref r)}");
            var raw = r.ValueSpan; // numbers are never escaped, so this is the literal text
            foreach (var c in raw)
                if (c is < (byte)'0' or > (byte)'9')
                    throw Error(Pos(ref r), $"tensor {Q(name)}: {what} must be a non-negative integer, found {Encoding.UTF8.GetString(raw)}");
            if (!r.TryGetUInt64(out var v))
                throw Error(Pos(ref r), $"tensor {Q(name)}: {what} must be a non-negative integer that fits in 64 bits, found {Encoding.UTF8.GetString(raw)}");
            return v;
        }
    }

    // ---- helpers ----

    /// <summary>Quotes a name for an error message: at most 100 characters, control characters escaped.</summary>
    internal static string Q(string s)
    {
        var t = s.Length > 100 ? s[..100] + "…" : s;
        if (t.Any(char.IsControl))
            t = string.Concat(t.Select(c => char.IsControl(c) ? $"\\u{(int)c:X4}" : c.ToString()));
        return "'" + t + "'";
    }

    private static string Describe(ref Utf8JsonReader r) => r.TokenType switch
    {
        JsonTokenType.String => "the string " + Q(DescribeString(ref r)),
        JsonTokenType.Number => "the number " + Encoding.UTF8.GetString(r.ValueSpan),
        JsonTokenType.StartObject => "an object",
        JsonTokenType.StartArray => "an array",
        JsonTokenType.True => "true",
        JsonTokenType.False => "false",
        JsonTokenType.Null => "null",
        var other => other.ToString(),
    };

    private static string DescribeString(ref Utf8JsonReader r)
    {
        try { return r.GetString()!; }
        catch (InvalidOperationException) { return Encoding.UTF8.GetString(r.ValueSpan); } // escapes to a lone surrogate: show them raw
    }

    private static string DescribeByte(byte b) => b is >= 0x21 and < 0x7F ? $"'{(char)b}'" : $"byte 0x{b:X2}";

    private static int FirstInvalidUtf8(ReadOnlySpan<byte> s)
    {
        int i = 0;
        while (i < s.Length)
        {
            if (System.Text.Rune.DecodeFromUtf8(s[i..], out _, out int used) != System.Buffers.OperationStatus.Done) return i;
            i += used;
        }
        return 0;
    }

    /// <summary>The file offset of a reader error, from its line number and byte position in that line.</summary>
    private static long JsonErrorOffset(ReadOnlySpan<byte> header, JsonException e)
    {
        long line = e.LineNumber ?? 0, inLine = e.BytePositionInLine ?? 0;
        int lineStart = 0;
        for (long l = 0; l < line; l++)
        {
            int nl = header[lineStart..].IndexOf((byte)'\n');
            if (nl < 0) break;
            lineStart += nl + 1;
        }
        return 8 + Math.Min(header.Length, lineStart + inLine);
    }

    private static string TrimJsonMessage(string message)
    {
        int i = message.IndexOf(" LineNumber:", StringComparison.Ordinal);
        return i >= 0 ? message[..i] : message;
    }
}
