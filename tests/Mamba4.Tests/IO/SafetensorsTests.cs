using System.Buffers.Binary;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using Mamba4.IO;
using Mamba4.Tensors;

namespace Mamba4.Tests;

/// <summary>
/// The safetensors reader and writer: round trips, the real fixture files, the byte layout the writer
/// produces, one test per malformed-input rule, and a fuzz loop over corrupted files.
/// </summary>
public sealed class SafetensorsTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "mamba4-safetensors-" + Guid.NewGuid().ToString("N"));

    public SafetensorsTests() => Directory.CreateDirectory(_dir);

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    private string TempPath(string name = "t.safetensors") => Path.Combine(_dir, name);

    // ------------------------------------------------------------------ helpers

    /// <summary>Writes 8-byte length + <paramref name="header"/> (unpadded) + <paramref name="data"/>.</summary>
    private string Raw(string header, int dataBytes = 0, ulong? lengthField = null, string name = "raw.safetensors")
    {
        var h = Encoding.UTF8.GetBytes(header);
        return RawBytes(h, new byte[dataBytes], lengthField ?? (ulong)h.Length, name);
    }

    private string RawBytes(byte[] header, byte[] data, ulong lengthField, string name = "raw.safetensors")
    {
        var bytes = new byte[8 + header.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, lengthField);
        header.CopyTo(bytes, 8);
        data.CopyTo(bytes, 8 + header.Length);
        var path = TempPath(name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    /// <summary>Opening (and reading every tensor of) <paramref name="path"/> must fail with a message
    /// that contains every fragment (case-insensitive) and names the file.</summary>
    private static SafetensorsFormatException AssertBad(string path, params string[] fragments)
    {
        var e = Assert.Throws<SafetensorsFormatException>(() =>
        {
            using var f = SafetensorsFile.Open(path);
            foreach (var n in f.Names) f.Get(n).Dispose();
        });
        Assert.Equal(path, e.Path);
        Assert.Contains(path, e.Message);
        foreach (var frag in fragments)
            Assert.True(e.Message.Contains(frag, StringComparison.OrdinalIgnoreCase), $"message does not mention \"{frag}\": {e.Message}");
        return e;
    }

    private static string Entry(string dtype, string shape, long begin, long end) =>
        $"{{\"dtype\":\"{dtype}\",\"shape\":{shape},\"data_offsets\":[{begin},{end}]}}";

    private static byte[] Bytes(Tensor t)
    {
        var r = new byte[t.ByteLength];
        Marshal.Copy(t.DataPointer, r, 0, r.Length);
        return r;
    }

    // ------------------------------------------------------------------ malformed: framing

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(7)]
    public void FileShorterThanEightBytes(int length)
    {
        var path = TempPath();
        File.WriteAllBytes(path, new byte[length]);
        var e = AssertBad(path, "8", $"{length} byte");
        Assert.Equal(0, e.Offset);
    }

    [Theory]
    [InlineData(100UL)]                     // a little beyond the file
    [InlineData(1UL << 40)]                 // absurd
    [InlineData(ulong.MaxValue)]            // would be negative as a long
    [InlineData(0x8000_0000_0000_0000UL)]
    public void HeaderLengthBeyondTheFile(ulong length)
    {
        var path = Raw("{}", dataBytes: 10, lengthField: length);
        var e = AssertBad(path, "header length", length.ToString(), "20 bytes");
        Assert.Equal(0, e.Offset);
    }

    [Fact]
    public void HeaderLengthOverTheLimitIsRejectedEvenWhenTheFileIsThatLarge()
    {
        // A sparse file large enough to hold the claimed header: the limit, not the file size, stops it.
        var path = TempPath();
        using (var fs = new FileStream(path, FileMode.Create))
        {
            Span<byte> len = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(len, SafetensorsFile.MaxHeaderLength + 1);
            fs.Write(len);
            fs.Write("{}"u8);
            fs.SetLength(8 + SafetensorsFile.MaxHeaderLength + 16);
        }
        AssertBad(path, "header length", (SafetensorsFile.MaxHeaderLength + 1).ToString(), "limit");
    }

    [Fact]
    public void EmptyHeader()
    {
        var path = Raw("", dataBytes: 4);
        var e = AssertBad(path, "empty", "JSON object");
        Assert.Equal(8, e.Offset);
    }

    [Fact]
    public void HeaderThatIsNotUtf8()
    {
        var header = Encoding.UTF8.GetBytes("{\"ab\":" + Entry("F32", "[1]", 0, 4) + "}");
        header[3] = 0xFF; // inside the name "ab"
        var path = RawBytes(header, new byte[4], (ulong)header.Length);
        var e = AssertBad(path, "UTF-8", "byte 11");
        Assert.Equal(8 + 3, e.Offset);
    }

    [Fact]
    public void HeaderWithTruncatedUtf8Sequence()
    {
        var header = Encoding.UTF8.GetBytes("{\"é\":" + Entry("F32", "[1]", 0, 4) + "}");
        var cut = header.Take(3).Concat(header.Skip(4)).ToArray(); // drop the second byte of 'é'
        var path = RawBytes(cut, new byte[4], (ulong)cut.Length);
        AssertBad(path, "UTF-8");
    }

    [Theory]
    [InlineData("{\"a\": }", "JSON")]
    [InlineData("{\"a\": {\"dtype\": \"F32\", ", "JSON")]             // truncated
    [InlineData("{\"a\" " + "\"b\"}", "JSON")]                        // missing colon
    [InlineData("{} x", "JSON")]                                        // junk after the object
    [InlineData("{}{}", "JSON")]
    [InlineData("{\"a\": 1,}", "JSON")]                                 // trailing comma
    [InlineData("{/* c */}", "JSON")]                                   // comments are not JSON
    [InlineData("{'a': 1}", "JSON")]
    public void HeaderThatIsNotValidJson(string header, string fragment)
    {
        var e = AssertBad(Raw(header), fragment);
        Assert.NotNull(e.Offset);
        Assert.InRange(e.Offset!.Value, 8, 8 + Encoding.UTF8.GetByteCount(header));
    }

    [Fact]
    public void JsonErrorOffsetPointsAtTheBadByte()
    {
        const string header = "{\n  \"a\": x}";
        var e = AssertBad(Raw(header), "JSON");
        Assert.Equal(8 + header.IndexOf('x'), e.Offset);
    }

    [Theory]
    [InlineData("[]")]
    [InlineData("\"tensors\"")]
    [InlineData("42")]
    [InlineData("null")]
    [InlineData("  {}")]   // the header must begin with '{' (as the reference implementation demands)
    public void HeaderThatIsNotAJsonObject(string header)
    {
        var e = AssertBad(Raw(header), "JSON object");
        Assert.Equal(8, e.Offset);
    }

    [Fact]
    public void TrailingSpacesAndNewlinesAfterTheHeaderAreAccepted()
    {
        using var f = SafetensorsFile.Open(Raw("{\"a\":" + Entry("F32", "[1]", 0, 4) + "}  \n   ", dataBytes: 4));
        Assert.Equal(["a"], f.Names);
    }

    [Fact]
    public void TrailingNulPaddingIsRejected()
    {
        AssertBad(Raw("{}\0\0\0\0\0\0"), "JSON");
    }

    // ------------------------------------------------------------------ malformed: entries

    [Theory]
    [InlineData("5", "number")]
    [InlineData("\"F32\"", "string")]
    [InlineData("[0, 4]", "array")]
    [InlineData("null", "null")]
    [InlineData("true", "true")]
    public void EntryThatIsNotAnObject(string value, string found)
    {
        AssertBad(Raw("{\"w\": " + value + "}"), "'w'", "object", found);
    }

    [Theory]
    [InlineData("dtype")]
    [InlineData("shape")]
    [InlineData("data_offsets")]
    public void EntryMissingAField(string field)
    {
        var fields = new Dictionary<string, string> { ["dtype"] = "\"F32\"", ["shape"] = "[2]", ["data_offsets"] = "[0, 8]" };
        fields.Remove(field);
        var header = "{\"w\": {" + string.Join(", ", fields.Select(kv => $"\"{kv.Key}\": {kv.Value}")) + "}}";
        AssertBad(Raw(header, 8), "'w'", "missing", field);
    }

    [Theory]
    [InlineData("\"dtype\": 5", "dtype", "string")]
    [InlineData("\"dtype\": null", "dtype", "string")]
    [InlineData("\"dtype\": [\"F32\"]", "dtype", "string")]
    [InlineData("\"shape\": \"2\"", "shape", "array")]
    [InlineData("\"shape\": 2", "shape", "array")]
    [InlineData("\"shape\": {\"0\": 2}", "shape", "array")]
    [InlineData("\"shape\": [\"2\"]", "shape", "integer")]
    [InlineData("\"shape\": [[2]]", "shape", "integer")]
    [InlineData("\"shape\": [null]", "shape", "integer")]
    [InlineData("\"data_offsets\": \"0,8\"", "data_offsets", "array")]
    [InlineData("\"data_offsets\": [0]", "data_offsets", "2")]
    [InlineData("\"data_offsets\": []", "data_offsets", "2")]
    [InlineData("\"data_offsets\": [0, 4, 8]", "data_offsets", "2")]
    [InlineData("\"data_offsets\": [\"0\", \"8\"]", "data_offsets", "integer")]
    [InlineData("\"data_offsets\": {\"begin\": 0, \"end\": 8}", "data_offsets", "array")]
    public void EntryFieldWithTheWrongJsonType(string replacement, string field, string expected)
    {
        var fields = new Dictionary<string, string> { ["dtype"] = "\"dtype\": \"F32\"", ["shape"] = "\"shape\": [2]", ["data_offsets"] = "\"data_offsets\": [0, 8]" };
        fields[field] = replacement;
        var header = "{\"w\": {" + string.Join(", ", fields.Values) + "}}";
        AssertBad(Raw(header, 8), "'w'", field, expected);
    }

    [Fact]
    public void EntryWithAnUnknownField()
    {
        var header = "{\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8], \"strides\": [1]}}";
        AssertBad(Raw(header, 8), "'w'", "unknown field", "strides");
    }

    [Fact]
    public void EntryWithARepeatedField()
    {
        var header = "{\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8], \"dtype\": \"F64\"}}";
        AssertBad(Raw(header, 8), "'w'", "dtype", "more than once");
    }

    [Theory]
    [InlineData("F31")]
    [InlineData("f32")]        // names are case-sensitive
    [InlineData("float32")]
    [InlineData("")]
    public void UnknownDType(string dtype)
    {
        AssertBad(Raw("{\"w\":" + Entry(dtype, "[2]", 0, 8) + "}", 8), "'w'", "dtype", $"'{dtype}'");
    }

    [Fact]
    public void KnownSafetensorsDTypeThatMamba4CannotHoldOpensButCannotBeRead()
    {
        var path = Raw("{\"mask\":" + Entry("BOOL", "[3]", 0, 3) + ",\"w\":" + Entry("U16", "[2]", 3, 7) + "}", 7);
        using var f = SafetensorsFile.Open(path);
        Assert.Equal("BOOL", f.Info("mask").DTypeName);
        Assert.Null(f.Info("mask").DType);
        var e = Assert.Throws<NotSupportedException>(() => f.Get("mask"));
        Assert.Contains("BOOL", e.Message);
        Assert.Throws<NotSupportedException>(() => f.GetView("w"));
    }

    [Theory]
    [InlineData("[-1]", "-1")]
    [InlineData("[2, -3]", "-3")]
    [InlineData("[1.5]", "1.5")]
    [InlineData("[2.0]", "2.0")]
    [InlineData("[1e1]", "1e1")]
    [InlineData("[18446744073709551616]", "18446744073709551616")]
    public void ShapeWithNegativeOrNonIntegerDimension(string shape, string bad)
    {
        var e = AssertBad(Raw("{\"w\":" + Entry("U8", shape, 0, 8) + "}", 8), "'w'", "shape", bad, "non-negative integer");
        Assert.NotNull(e.Offset);
    }

    [Fact]
    public void ShapeDimensionBeyondInt32()
    {
        AssertBad(Raw("{\"w\":" + Entry("U8", "[0, 3000000000]", 0, 0) + "}"), "'w'", "3000000000", "2147483647");
    }

    [Fact]
    public void ShapeWhoseElementCountOverflows()
    {
        AssertBad(Raw("{\"w\":" + Entry("F64", "[2147483647, 2147483647, 2147483647]", 0, 8) + "}", 8), "'w'", "too large");
    }

    [Theory]
    [InlineData("[-1, 7]", "-1")]
    [InlineData("[0.0, 8]", "0.0")]
    [InlineData("[0, 8e0]", "8e0")]
    public void DataOffsetsThatAreNotNonNegativeIntegers(string offsets, string bad)
    {
        var header = "{\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": " + offsets + "}}";
        AssertBad(Raw(header, 8), "'w'", "data_offsets", bad);
    }

    [Fact]
    public void DataOffsetsBeyondTheEndOfTheFile()
    {
        var e = AssertBad(Raw("{\"w\":" + Entry("F32", "[4]", 0, 16) + "}", 8), "'w'", "[0, 16]", "8 bytes");
        Assert.NotNull(e.Offset);
    }

    [Fact]
    public void DataOffsetsHugeEnd()
    {
        AssertBad(Raw("{\"w\": {\"dtype\": \"U8\", \"shape\": [4], \"data_offsets\": [0, 18446744073709551615]}}", 8), "'w'", "18446744073709551615");
    }

    [Fact]
    public void DataOffsetsWithBeginAfterEnd()
    {
        AssertBad(Raw("{\"w\":" + Entry("F32", "[0]", 8, 4) + "}", 8), "'w'", "[8, 4]", "begin", "end");
    }

    [Fact]
    public void ByteSizeThatDoesNotMatchTheShape()
    {
        // [2, 3] float32 needs 24 bytes; the entry gives 20.
        var e = AssertBad(Raw("{\"w\":" + Entry("F32", "[2, 3]", 0, 20) + "}", 20), "'w'", "24 bytes", "20");
        Assert.NotNull(e.Offset);
    }

    [Fact]
    public void OverlappingRanges()
    {
        var header = "{\"a\":" + Entry("F32", "[2]", 0, 8) + ",\"b\":" + Entry("F32", "[2]", 4, 12) + "}";
        var e = AssertBad(Raw(header, 12), "'a'", "'b'", "overlap");
        Assert.Equal(8 + Encoding.UTF8.GetByteCount(header) + 4, e.Offset);
    }

    [Fact]
    public void TwoTensorsSharingTheSameRange()
    {
        var header = "{\"a\":" + Entry("F32", "[2]", 0, 8) + ",\"b\":" + Entry("F32", "[2]", 0, 8) + "}";
        AssertBad(Raw(header, 8), "'a'", "'b'", "overlap");
    }

    [Fact]
    public void HoleAtTheStartOfTheData()
    {
        var header = "{\"a\":" + Entry("F32", "[2]", 4, 12) + "}";
        var e = AssertBad(Raw(header, 12), "hole", "[0, 4)");
        Assert.Equal(8 + Encoding.UTF8.GetByteCount(header), e.Offset);
    }

    [Fact]
    public void HoleBetweenTensors()
    {
        var header = "{\"a\":" + Entry("F32", "[2]", 0, 8) + ",\"b\":" + Entry("F32", "[2]", 12, 20) + "}";
        var e = AssertBad(Raw(header, 20), "hole", "[8, 12)", "'a'", "'b'");
        Assert.Equal(8 + Encoding.UTF8.GetByteCount(header) + 8, e.Offset);
    }

    [Fact]
    public void BytesAfterTheLastTensor()
    {
        var header = "{\"a\":" + Entry("F32", "[2]", 0, 8) + "}";
        AssertBad(Raw(header, 11), "3 bytes", "after", "'a'");
    }

    [Fact]
    public void DataButNoTensors()
    {
        AssertBad(Raw("{}", 5), "5 bytes");
    }

    [Fact]
    public void ZeroSizeTensorInsideAnotherTensorsRange()
    {
        var header = "{\"a\":" + Entry("F32", "[2]", 0, 8) + ",\"z\":" + Entry("F32", "[0]", 4, 4) + "}";
        AssertBad(Raw(header, 8), "'z'", "'a'");
    }

    [Fact]
    public void DuplicateTensorNames()
    {
        var header = "{\"w\":" + Entry("F32", "[1]", 0, 4) + ",\"w\":" + Entry("F32", "[1]", 4, 8) + "}";
        var e = AssertBad(Raw(header, 8), "duplicate", "'w'");
        Assert.Equal(8 + header.LastIndexOf("\"w\"", StringComparison.Ordinal), e.Offset);
    }

    [Fact]
    public void DuplicateTensorNamesThatDifferOnlyInEscaping()
    {
        var header = "{\"w\":" + Entry("F32", "[1]", 0, 4) + ",\"\\u0077\":" + Entry("F32", "[1]", 4, 8) + "}";
        AssertBad(Raw(header, 8), "duplicate", "'w'");
    }

    [Theory]
    [InlineData("{\"\\ud800\": {}}")]                                          // tensor name
    [InlineData("{\"w\": {\"\\udc00\": 1}}")]                                 // field name
    [InlineData("{\"w\": {\"dtype\": \"F\\ud83d\", \"shape\": [], \"data_offsets\": [0, 4]}}")] // dtype value
    [InlineData("{\"__metadata__\": {\"k\": \"\\udfff\"}}")]                   // metadata value
    [InlineData("{\"__metadata__\": {\"\\ud800x\": \"v\"}}")]                  // metadata key
    public void EscapeThatDecodesToALoneSurrogate(string header)
    {
        AssertBad(Raw(header, 4), "surrogate");
    }

    [Fact]
    public void LoneSurrogateInsideAnErrorMessageIsShownRaw()
    {
        AssertBad(Raw("{\"w\": \"\\ud800\"}"), "'w'", "object", "\\ud800");
    }

    [Fact]
    public void RepeatedMetadataBlock()
    {
        AssertBad(Raw("{\"__metadata__\": {}, \"__metadata__\": {}}"), "duplicate", "__metadata__");
    }

    [Theory]
    [InlineData("{\"k\": 1}", "'k'", "string")]
    [InlineData("{\"k\": null}", "'k'", "string")]
    [InlineData("{\"k\": {\"x\": \"y\"}}", "'k'", "string")]
    [InlineData("{\"k\": [\"v\"]}", "'k'", "string")]
    [InlineData("{\"k\": \"v\", \"k\": \"w\"}", "'k'", "duplicate")]
    [InlineData("\"format\"", "__metadata__", "object")]
    [InlineData("[]", "__metadata__", "object")]
    [InlineData("7", "__metadata__", "object")]
    public void MetadataThatIsNotAStringToStringObject(string metadata, string f1, string f2)
    {
        AssertBad(Raw("{\"__metadata__\": " + metadata + "}"), "__metadata__", f1, f2);
    }

    [Fact]
    public void ErrorsCarryTheFileAndOffsetInTheMessage()
    {
        var path = Raw("{\"w\":" + Entry("F31", "[2]", 0, 8) + "}", 8);
        var e = AssertBad(path);
        Assert.NotNull(e.Offset);
        Assert.Contains($"byte {e.Offset}", e.Message);
        Assert.IsAssignableFrom<FormatException>(e);
    }

    [Fact]
    public void MissingFileIsAnIoErrorNotAFormatError()
    {
        Assert.Throws<FileNotFoundException>(() => SafetensorsFile.Open(TempPath("nope.safetensors")));
    }

    // ------------------------------------------------------------------ valid edge cases of the format

    [Fact]
    public void EmptyFileWithNoTensors()
    {
        using var f = SafetensorsFile.Open(Raw("{}"));
        Assert.Empty(f.Names);
        Assert.Empty(f.Metadata);
    }

    [Fact]
    public void NullMetadataIsTreatedAsNone()
    {
        using var f = SafetensorsFile.Open(Raw("{\"__metadata__\": null}"));
        Assert.Empty(f.Metadata);
    }

    [Fact]
    public void OffsetsListedOutOfOrderAreFine()
    {
        var header = "{\"b\":" + Entry("F32", "[1]", 4, 8) + ",\"z\":" + Entry("F64", "[0]", 8, 8) + ",\"a\":" + Entry("F32", "[1]", 0, 4) + "}";
        var data = new byte[8];
        BinaryPrimitives.WriteSingleLittleEndian(data, 1.5f);
        BinaryPrimitives.WriteSingleLittleEndian(data.AsSpan(4), -2f);
        using var f = SafetensorsFile.Open(RawBytes(Encoding.UTF8.GetBytes(header), data, (ulong)Encoding.UTF8.GetByteCount(header)));
        Assert.Equal(["b", "z", "a"], f.Names);
        using var a = f.Get("a");
        using var b = f.Get("b");
        Assert.Equal(1.5f, a.Item());
        Assert.Equal(-2f, b.Item());
        Assert.Equal(new Shape(0), f.Info("z").Shape);
    }

    [Fact]
    public void MissingTensorNameIsAKeyError()
    {
        using var f = SafetensorsFile.Open(Raw("{\"a\":" + Entry("F32", "[1]", 0, 4) + "}", 4));
        Assert.False(f.Contains("b"));
        Assert.True(f.Contains("a"));
        Assert.False(f.Contains("__metadata__"));
        var e = Assert.Throws<KeyNotFoundException>(() => f.Get("b"));
        Assert.Contains("'b'", e.Message);
        Assert.Throws<KeyNotFoundException>(() => f.Info("b"));
    }

    // ------------------------------------------------------------------ round trips

    private static List<(string Name, Tensor Tensor)> EveryDType()
    {
        var list = new List<(string, Tensor)>
        {
            ("f64.matrix", Tensor.From([1.0, -2.5, Math.PI, double.MaxValue, double.Epsilon, -0.0], 2, 3)),
            ("f32 vector \"quoted\"", Tensor.From([1f, -2f, float.NaN, float.PositiveInfinity, 1e-40f], 5)),
            ("f16/ünïcødé ✓", Tensor.From([(Half)1, (Half)(-0.5), Half.MaxValue, Half.Epsilon], 2, 2)),
            ("bf16.scalar", Tensor.From([(BFloat16)3.14159f], [])),
            ("i64", Tensor.From([long.MinValue, -1L, 0L, long.MaxValue], 4, 1)),
            ("i32.empty", Tensor.Empty(new Shape(3, 0, 2), DType.I32)),
            ("i32", Tensor.From([int.MinValue, 7, int.MaxValue], 3)),
            ("u8", U8([0, 1, 127, 128, 255], 5)),
            ("f32.zero_first", Tensor.Empty(new Shape(0), DType.F32)),
            ("f32.3d", Tensor.From(Enumerable.Range(0, 24).Select(i => i * 0.25f).ToArray(), 2, 3, 4)),
        };
        return list;
    }

    private static Tensor U8(byte[] values, params int[] shape)
    {
        var t = Tensor.Empty(new Shape(shape), DType.U8);
        values.CopyTo(t.AsSpan<byte>());
        return t;
    }

    private static void DisposeAll(IEnumerable<(string Name, Tensor Tensor)> list)
    {
        foreach (var (_, t) in list) t.Dispose();
    }

    [Fact]
    public void RoundTripOfEveryDTypeWithNamesShapesAndMetadata()
    {
        var tensors = EveryDType();
        var metadata = new Dictionary<string, string>
        {
            ["format"] = "pt",
            ["note"] = "quotes \" backslash \\ newline \n tab \t <html>&",
            ["ünïcødé"] = "日本語 😀",
            ["empty"] = "",
        };
        var path = TempPath();
        try
        {
            Safetensors.Save(path, tensors, metadata);
            using var f = SafetensorsFile.Open(path);
            Assert.Equal(tensors.Select(t => t.Name), f.Names);
            Assert.Equal(metadata.OrderBy(kv => kv.Key, StringComparer.Ordinal), f.Metadata.OrderBy(kv => kv.Key, StringComparer.Ordinal));
            foreach (var (name, t) in tensors)
            {
                var info = f.Info(name);
                Assert.Equal(t.DType, info.DType);
                Assert.Equal(t.DType.SafetensorsName(), info.DTypeName);
                Assert.Equal(t.Shape, info.Shape);
                Assert.Equal(t.ByteLength, info.ByteLength);
                using var back = f.Get(name);
                Assert.Equal(t.DType, back.DType);
                Assert.Equal(t.Shape, back.Shape);
                Assert.Equal(name, back.Name);
                Assert.Equal(Bytes(t), Bytes(back)); // bit-exact, NaN and -0 included
                Assert.Equal(0, back.DataPointer % CpuAllocator.Alignment);
            }
        }
        finally { DisposeAll(tensors); }
    }

    [Fact]
    public void RoundTripWithoutMetadataAndFromADictionary()
    {
        var path = TempPath();
        var dict = new Dictionary<string, Tensor> { ["x"] = Tensor.From([1f, 2f], 2), ["y"] = Tensor.From([3L], 1) };
        try
        {
            Safetensors.Save(path, dict);
            var loaded = SafetensorsFile.LoadAll(path);
            try
            {
                Assert.Equal(["x", "y"], loaded.Keys.Order());
                Assert.Equal([1f, 2f], loaded["x"].ToFloatArray());
                Assert.Equal([3L], loaded["y"].ToInt64Array());
            }
            finally { foreach (var t in loaded.Values) t.Dispose(); }
            using var f = SafetensorsFile.Open(path);
            Assert.Empty(f.Metadata);
            Assert.DoesNotContain("__metadata__", File.ReadAllText(path));
        }
        finally { foreach (var t in dict.Values) t.Dispose(); }
    }

    [Fact]
    public void SaveOverwritesAtomicallyAndLeavesNoTemporaryFiles()
    {
        var path = TempPath();
        using var a = Tensor.From([1f], 1);
        using var b = Tensor.From([2f, 3f], 2);
        Safetensors.Save(path, [("a", a)]);
        Safetensors.Save(path, [("b", b)]);
        using (var f = SafetensorsFile.Open(path)) Assert.Equal(["b"], f.Names);
        Assert.Equal([Path.GetFileName(path)], Directory.GetFiles(_dir).Select(Path.GetFileName));
    }

    [Fact]
    public void SaveOverAFileThatIsOpenAndMappedKeepsTheOldViewIntact()
    {
        var path = TempPath();
        using var a = Tensor.From([1f, 2f], 2);
        Safetensors.Save(path, [("w", a)]);
        using var f = SafetensorsFile.Open(path);
        using var view = f.GetView("w");
        using var b = Tensor.From([5f, 6f], 2);
        Safetensors.Save(path, [("w", b)]);
        Assert.Equal([1f, 2f], view.ToFloatArray());
        using var g = SafetensorsFile.Open(path);
        using var w = g.Get("w");
        Assert.Equal([5f, 6f], w.ToFloatArray());
    }

    [Fact]
    public void SaveRejectsDuplicateNames()
    {
        var path = TempPath();
        using var a = Tensor.From([1f], 1);
        var e = Assert.Throws<ArgumentException>(() => Safetensors.Save(path, [("w", a), ("v", a), ("w", a)]));
        Assert.Contains("'w'", e.Message);
        Assert.Contains("duplicate", e.Message, StringComparison.OrdinalIgnoreCase);
        Assert.False(File.Exists(path));
        Assert.Empty(Directory.GetFiles(_dir));
    }

    [Fact]
    public void SaveRejectsTheReservedMetadataName()
    {
        using var a = Tensor.From([1f], 1);
        var e = Assert.Throws<ArgumentException>(() => Safetensors.Save(TempPath(), [("__metadata__", a)]));
        Assert.Contains("__metadata__", e.Message);
    }

    [Fact]
    public void SaveRejectsDisposedTensors()
    {
        var a = Tensor.From([1f], 1);
        a.Dispose();
        var e = Assert.Throws<ArgumentException>(() => Safetensors.Save(TempPath(), [("gone", a)]));
        Assert.Contains("'gone'", e.Message);
        Assert.Contains("disposed", e.Message);
    }

    private sealed class NoOwner : IStorageOwner
    {
        public void Free(Storage storage) { }
    }

    [Fact]
    public unsafe void AGpuTensorThatCannotBeReadLeavesTheOldFileUntouched()
    {
        // GPU tensors are written from a host copy; without CUDA that copy fails, and the save with it, atomically.
        if (Mamba4.Backends.Backend.IsAvailable(Device.Cuda(0), out _)) Assert.Skip("needs a machine without CUDA (the tensor below is not really on a GPU)");
        var path = TempPath();
        using var good = Tensor.From([1f, 2f], 2);
        Safetensors.Save(path, [("old", good)]);
        var before = File.ReadAllBytes(path);

        var block = NativeMemory.AllocZeroed(64);
        try
        {
            var gpu = new Tensor(new Storage((nint)block, 64, Device.Cuda(0), new NoOwner()), 0, new Shape(4), DType.F32);
            var e = Assert.Throws<NotSupportedException>(() => Safetensors.Save(path, [("a", good), ("on.gpu", gpu)]));
            Assert.Contains("CUDA is not available", e.Message);
        }
        finally { NativeMemory.Free(block); }
        Assert.Equal(before, File.ReadAllBytes(path));
        Assert.Equal([Path.GetFileName(path)], Directory.GetFiles(_dir).Select(Path.GetFileName));
    }

    // ------------------------------------------------------------------ the byte layout the writer produces

    [Fact]
    public void WrittenHeaderLayoutIsCheckedIndependently()
    {
        var tensors = EveryDType();
        var meta = new Dictionary<string, string> { ["format"] = "pt", ["x"] = "y" };
        var path = TempPath();
        try
        {
            Safetensors.Save(path, tensors, meta);
            var bytes = File.ReadAllBytes(path);
            ulong n = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
            Assert.True(n <= (ulong)bytes.Length - 8);
            int dataStart = 8 + (int)n;
            Assert.Equal(0, dataStart % 8);                         // data begins on an 8-byte boundary
            var headerBytes = bytes.AsSpan(8, (int)n);
            Assert.Equal((byte)'{', headerBytes[0]);
            int end = headerBytes.LastIndexOf((byte)'}');
            Assert.True(end >= 0 && n - (ulong)end - 1 < 8, "at most 7 bytes of padding");
            Assert.All(headerBytes[(end + 1)..].ToArray(), b => Assert.Equal((byte)' ', b));
            var text = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(headerBytes);

            using var doc = JsonDocument.Parse(text);
            var props = doc.RootElement.EnumerateObject().ToList();
            Assert.Equal("__metadata__", props[0].Name);
            Assert.Equal("pt", props[0].Value.GetProperty("format").GetString());
            Assert.Equal(tensors.Select(t => t.Name), props.Skip(1).Select(p => p.Name));
            long expectedBegin = 0;
            foreach (var ((name, t), p) in tensors.Zip(props.Skip(1)))
            {
                Assert.Equal(t.DType.SafetensorsName(), p.Value.GetProperty("dtype").GetString());
                Assert.Equal(t.Shape.ToArray(), p.Value.GetProperty("shape").EnumerateArray().Select(e => e.GetInt32()).ToArray());
                var offs = p.Value.GetProperty("data_offsets").EnumerateArray().Select(e => e.GetInt64()).ToArray();
                Assert.Equal([expectedBegin, expectedBegin + t.ByteLength], offs); // in the given order, no gaps
                Assert.Equal(Bytes(t), bytes.AsSpan(dataStart + (int)offs[0], (int)t.ByteLength).ToArray());
                expectedBegin += t.ByteLength;
                Assert.Equal(3, p.Value.EnumerateObject().Count());
            }
            Assert.Equal(dataStart + expectedBegin, bytes.Length);
        }
        finally { DisposeAll(tensors); }
    }

    [Fact]
    public void HeaderIsPaddedForEveryResidue()
    {
        // Names of growing length walk the header length through every residue mod 8.
        using var t = Tensor.From([1f], 1);
        for (int i = 0; i < 16; i++)
        {
            var path = TempPath($"pad{i}.safetensors");
            Safetensors.Save(path, [(new string('n', i + 1), t)]);
            var bytes = File.ReadAllBytes(path);
            var n = (long)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
            Assert.Equal(0, (8 + n) % 8);
            Assert.Equal(8 + n + 4, bytes.Length);
            using var f = SafetensorsFile.Open(path);
            Assert.Equal(8 + n, f.DataOffset);
        }
    }

    // ------------------------------------------------------------------ zero-copy views

    [Fact]
    public void ViewSharesTheMapAndOutlivesTheFile()
    {
        var path = TempPath();
        using (var src = Tensor.From([1f, 2f, 3f, 4f], 2, 2)) Safetensors.Save(path, [("w", src)]);
        Tensor view;
        using (var f = SafetensorsFile.Open(path))
        {
            view = f.GetView("w");
            Assert.Equal(f.DataOffset + f.Info("w").DataBegin, f.Info("w").FileOffset);
        }
        // The file object is disposed; the view keeps the mapping alive.
        Assert.Equal([1f, 2f, 3f, 4f], view.ToFloatArray());
        Assert.Equal(new Shape(2, 2), view.Shape);
        Assert.Equal("w", view.Name);
        using (var r = view.Reshape(4)) Assert.Equal(4f, r.ToFloatArray()[3]);
        view.Dispose();
        Assert.True(view.IsDisposed);
    }

    [Fact]
    public void WritingThroughAViewNeverChangesTheFile()
    {
        var path = TempPath();
        using (var src = Tensor.From([1f, 2f], 2)) Safetensors.Save(path, [("w", src)]);
        var before = File.ReadAllBytes(path);
        using (var f = SafetensorsFile.Open(path))
        using (var view = f.GetView("w"))
        {
            view.AsSpan<float>()[0] = 42f;                  // copy-on-write page: private to this process
            Assert.Equal(42f, view.ToFloatArray()[0]);
        }
        Assert.Equal(before, File.ReadAllBytes(path));
    }

    [Fact]
    public void ViewsInAScopeAreReleasedWithIt()
    {
        var path = TempPath();
        using (var src = Tensor.From([1f, 2f], 2)) Safetensors.Save(path, [("w", src)]);
        using var f = SafetensorsFile.Open(path);
        Tensor v;
        using (new TensorScope()) v = f.GetView("w");
        Assert.True(v.IsDisposed);
    }

    [Fact]
    public void ViewsOfUnalignedDataStillRead()
    {
        // A 3-byte U8 tensor pushes the next F32 tensor to an odd address; views must still read it.
        var path = TempPath();
        using var u = U8([9, 8, 7], 3);
        using var w = Tensor.From([1.25f, -3f], 2);
        Safetensors.Save(path, [("u", u), ("w", w)]);
        using var f = SafetensorsFile.Open(path);
        using var view = f.GetView("w");
        Assert.NotEqual(0, view.DataPointer % 4);
        Assert.Equal([1.25f, -3f], view.ToFloatArray());
        using var copy = f.Get("w");
        Assert.Equal(0, copy.DataPointer % CpuAllocator.Alignment);
    }

    [Fact]
    public void UsingADisposedFileThrows()
    {
        var path = Raw("{\"a\":" + Entry("F32", "[1]", 0, 4) + "}", 4);
        var f = SafetensorsFile.Open(path);
        f.Dispose();
        f.Dispose(); // idempotent
        Assert.Throws<ObjectDisposedException>(() => f.Get("a"));
        Assert.Throws<ObjectDisposedException>(() => f.GetView("a"));
    }

    // ------------------------------------------------------------------ conversion on read

    [Theory]
    [InlineData(DType.BF16, DType.F32)]
    [InlineData(DType.F16, DType.F32)]
    [InlineData(DType.F32, DType.BF16)]
    [InlineData(DType.F32, DType.F16)]
    [InlineData(DType.F64, DType.F32)]
    [InlineData(DType.F32, DType.F64)]
    [InlineData(DType.I64, DType.F32)]
    [InlineData(DType.I32, DType.I64)]
    [InlineData(DType.F16, DType.F64)]
    [InlineData(DType.U8, DType.F32)]
    public void ConversionOnReadMatchesTensorTo(DType stored, DType wanted)
    {
        var values = new[] { 0f, 1f, -1.5f, 3.140625f, 100.3f, -65504f, 1e-3f, 255f, 7f };
        if (stored == DType.U8) values = values.Select(v => Math.Clamp(MathF.Round(MathF.Abs(v)), 0, 255)).ToArray();
        using var f32 = Tensor.From(values, values.Length);
        using var src = f32.To(stored);
        var path = TempPath();
        Safetensors.Save(path, [("x", src)]);
        using var f = SafetensorsFile.Open(path);
        using var got = f.Get("x", wanted);
        using var expected = src.To(wanted);
        Assert.Equal(wanted, got.DType);
        Assert.Equal(Bytes(expected), Bytes(got));
        var all = SafetensorsFile.LoadAll(path, wanted);
        try { Assert.Equal(Bytes(expected), Bytes(all["x"])); }
        finally { foreach (var t in all.Values) t.Dispose(); }
    }

    // ------------------------------------------------------------------ the real fixtures

    [Fact]
    public void ReadsTheHfMambaCheckpoint()
    {
        var path = Fixtures.Path_("hf-mamba", "model.safetensors");
        using var config = JsonDocument.Parse(File.ReadAllText(Fixtures.Path_("hf-mamba", "config.json")));
        var c = config.RootElement;
        int d = c.GetProperty("hidden_size").GetInt32(), vocab = c.GetProperty("vocab_size").GetInt32();
        int layers = c.GetProperty("num_hidden_layers").GetInt32(), inner = c.GetProperty("intermediate_size").GetInt32();
        int n = c.GetProperty("state_size").GetInt32(), k = c.GetProperty("conv_kernel").GetInt32();
        int rank = c.GetProperty("time_step_rank").GetInt32();
        Assert.Equal(inner, c.GetProperty("expand").GetInt32() * d);

        var expected = new Dictionary<string, int[]> { ["backbone.embeddings.weight"] = [vocab, d], ["backbone.norm_f.weight"] = [d] };
        for (int i = 0; i < layers; i++)
        {
            var p = $"backbone.layers.{i}.";
            expected[p + "norm.weight"] = [d];
            expected[p + "mixer.in_proj.weight"] = [2 * inner, d];
            expected[p + "mixer.conv1d.weight"] = [inner, 1, k];
            expected[p + "mixer.conv1d.bias"] = [inner];
            expected[p + "mixer.x_proj.weight"] = [rank + 2 * n, inner];
            expected[p + "mixer.dt_proj.weight"] = [inner, rank];
            expected[p + "mixer.dt_proj.bias"] = [inner];
            expected[p + "mixer.A_log"] = [inner, n];
            expected[p + "mixer.D"] = [inner];
            expected[p + "mixer.out_proj.weight"] = [d, inner];
        }

        using var f = SafetensorsFile.Open(path);
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), f.Names.Order(StringComparer.Ordinal));
        Assert.Equal("pt", f.Metadata["format"]);
        Assert.Equal(0, f.DataOffset % 8);

        // An independent reading of the same file: raw header JSON + BinaryPrimitives.
        var raw = File.ReadAllBytes(path);
        long dataStart = 8 + (long)BinaryPrimitives.ReadUInt64LittleEndian(raw);
        using var header = JsonDocument.Parse(raw.AsMemory(8, (int)(dataStart - 8)));
        foreach (var (name, shape) in expected)
        {
            var info = f.Info(name);
            Assert.Equal(DType.F32, info.DType);
            Assert.Equal(new Shape(shape), info.Shape);
            using var t = f.Get(name);
            var values = t.ToFloatArray();
            Assert.All(values, v => Assert.True(float.IsFinite(v), $"{name} has a non-finite value"));
            Assert.Contains(values, v => v != 0);
            var begin = header.RootElement.GetProperty(name).GetProperty("data_offsets")[0].GetInt64();
            for (int i = 0; i < values.Length; i++)
                Assert.Equal(BinaryPrimitives.ReadSingleLittleEndian(raw.AsSpan((int)(dataStart + begin + 4 * i))), values[i]);
            using var view = f.GetView(name);
            Assert.Equal(values, view.ToFloatArray());
        }
        // A_log starts as log(1..n) per channel and was only perturbed: A = -exp(A_log) stays negative and moderate.
        using var aLog = f.Get("backbone.layers.0.mixer.A_log");
        Assert.All(aLog.ToFloatArray(), v => Assert.InRange(v, -3f, MathF.Log(n) + 3f));
    }

    [Fact]
    public void ReadsTheSelectiveScanFixture()
    {
        using var f = SafetensorsFile.Open(Fixtures.Path_("selective-scan-selective.safetensors"));
        var u = f.Info("in.u").Shape;          // [batch, d, L]
        int batch = u[0], d = u[1], L = u[2];
        var A = f.Info("in.A").Shape;          // [d, n]
        Assert.Equal(d, A[0]);
        int n = A[1];
        Assert.Equal(new Shape(batch, n, L), f.Info("in.B").Shape);
        Assert.Equal(new Shape(batch, n, L), f.Info("in.C").Shape);
        Assert.Equal(new Shape(d), f.Info("in.D").Shape);
        Assert.Equal(new Shape(d), f.Info("in.delta_bias").Shape);
        Assert.Equal(new Shape(batch, d, L), f.Info("out.y").Shape);
        Assert.Equal(new Shape(batch, d, n), f.Info("out.last_state").Shape);
        foreach (var name in f.Names)
        {
            Assert.Equal(DType.F64, f.Info(name).DType);
            if (name.StartsWith("grad.", StringComparison.Ordinal)) Assert.Equal(f.Info("in." + name[5..]).Shape, f.Info(name).Shape);
            using var t = f.Get(name);
            Assert.All(t.ToDoubleArray(), v => Assert.True(double.IsFinite(v), name));
        }
        // Names come back in file order (this file lists them sorted).
        Assert.Equal(f.Names.Order(StringComparer.Ordinal), f.Names);
        using var a = f.Get("in.A", DType.F32);
        Assert.All(a.ToFloatArray(), v => Assert.True(v < 0, "A = -exp(A_log) is negative"));
    }

    [Fact]
    public void EveryFixtureFileOpensAndReads()
    {
        var files = Directory.EnumerateFiles(Fixtures.Path_(), "*.safetensors", SearchOption.AllDirectories).ToList();
        Assert.True(files.Count >= 5, $"found only {files.Count} fixture files");
        foreach (var path in files)
        {
            using var f = SafetensorsFile.Open(path);
            Assert.NotEmpty(f.Names);
            long covered = 0;
            foreach (var info in f.Tensors)
            {
                Assert.NotNull(info.DType);
                using var t = f.Get(info.Name);
                Assert.Equal(info.Shape, t.Shape);
                if (t.DType.IsFloatingPoint()) Assert.All(t.ToDoubleArray(), v => Assert.True(double.IsFinite(v), $"{path}: {info.Name}"));
                covered += info.ByteLength;
            }
            Assert.Equal(f.FileLength - f.DataOffset, covered);
        }
        using var reference = SafetensorsFile.Open(Fixtures.Path_("hf-mamba", "reference.safetensors"));
        Assert.Equal(DType.I64, reference.Info("input_ids").DType);
        Assert.Equal(new Shape(2, 13), reference.Info("input_ids").Shape);
        using var ids = reference.Get("input_ids");
        Assert.All(ids.ToInt64Array(), id => Assert.InRange(id, 0, 95));
    }

    // ------------------------------------------------------------------ fuzz

    [Fact]
    public async Task CorruptedFilesNeverCrashOrHang()
    {
        var tensors = new List<(string, Tensor)>
        {
            ("w", Tensor.From([1f, 2f, 3f, 4f, 5f, 6f], 2, 3)),
            ("b16", Tensor.From([(BFloat16)1f, (BFloat16)(-2f)], 2)),
            ("ids", Tensor.From([5L, 6L, 7L], 3)),
            ("bytes", U8([1, 2, 3], 3)),
            ("s", Tensor.From([(Half)0.5], [])),
            ("none", Tensor.Empty(new Shape(2, 0), DType.F64)),
        };
        var path = TempPath("fuzz.safetensors");
        Safetensors.Save(path, tensors, new Dictionary<string, string> { ["format"] = "pt" });
        DisposeAll(tensors);
        var valid = File.ReadAllBytes(path);
        int headerEnd = 8 + (int)BinaryPrimitives.ReadUInt64LittleEndian(valid);

        var rng = new Random(1234);
        int opened = 0, rejected = 0, iterations = 0;
        var failures = new List<string>();
        var budget = Stopwatch.StartNew();
        var ct = TestContext.Current.CancellationToken;
        var work = Task.Run(() =>
        {
            for (; iterations < 4000 && budget.Elapsed < TimeSpan.FromSeconds(6); iterations++)
            {
                var bytes = Corrupt(valid, headerEnd, rng);
                File.WriteAllBytes(path, bytes);
                try
                {
                    using var f = SafetensorsFile.Open(path);
                    opened++;
                    _ = f.Metadata.Count;
                    foreach (var name in f.Names)
                    {
                        var info = f.Info(name);
                        if (info.DType is null)
                        {
                            Assert.Throws<NotSupportedException>(() => f.Get(name));
                            continue;
                        }
                        using (var t = f.Get(name)) Assert.Equal(info.ByteLength, t.ByteLength);
                        using (var t = f.Get(name, DType.F32)) _ = t.NumElements;
                        using (var v = f.GetView(name)) if (v.NumElements > 0) _ = v.ToDoubleArray();
                    }
                }
                catch (SafetensorsFormatException e)
                {
                    rejected++;
                    if (e.Path != path || string.IsNullOrWhiteSpace(e.Message)) failures.Add("bad exception: " + e.Message);
                }
                catch (Exception e)
                {
                    failures.Add($"iteration {iterations}: {e.GetType().Name}: {e.Message}\n{Convert.ToHexString(bytes)}");
                    if (failures.Count > 5) break;
                }
            }
        }, ct);
        await work.WaitAsync(TimeSpan.FromSeconds(30), ct); // TimeoutException: the fuzz loop hung
        Assert.True(failures.Count == 0, string.Join("\n\n", failures));
        Assert.True(iterations >= 1000, $"only {iterations} iterations ran");
        Assert.True(opened > 50 && rejected > 200, $"opened {opened}, rejected {rejected}: the corruptions are not exercising both paths");
    }

    private static byte[] Corrupt(byte[] valid, int headerEnd, Random rng)
    {
        var b = new List<byte>(valid);
        int ops = rng.Next(1, 4);
        for (int k = 0; k < ops; k++)
        {
            int hEnd = Math.Min(headerEnd, b.Count);
            switch (rng.Next(11))
            {
                case 0 when hEnd > 8: // flip a bit in the header
                    { int i = rng.Next(8, hEnd); b[i] ^= (byte)(1 << rng.Next(8)); break; }
                case 1 when hEnd > 8: // a random byte in the header
                    { int i = rng.Next(8, hEnd); b[i] = (byte)rng.Next(256); break; }
                case 2 when b.Count > hEnd: // a random byte in the data
                    { int i = rng.Next(hEnd, b.Count); b[i] = (byte)rng.Next(256); break; }
                case 3: // truncate
                    {
                        int at = rng.Next(b.Count + 1);
                        b.RemoveRange(at, b.Count - at);
                        break;
                    }
                case 4 when b.Count >= 8: // the length field: random, near the truth, or tiny
                    {
                        ulong v = rng.Next(3) switch
                        {
                            0 => (ulong)rng.NextInt64() * (ulong)rng.Next(1, 3),
                            1 => (ulong)(headerEnd - 8 + rng.Next(-16, 17)),
                            _ => (ulong)rng.Next(0, 16),
                        };
                        var span = CollectionsMarshal.AsSpan(b);
                        BinaryPrimitives.WriteUInt64LittleEndian(span, v);
                        break;
                    }
                case 5: // insert junk
                    {
                        int at = rng.Next(b.Count + 1);
                        var junk = new byte[rng.Next(1, 12)];
                        rng.NextBytes(junk);
                        b.InsertRange(at, junk);
                        break;
                    }
                case 6 when hEnd > 8: // nudge a digit in the header: reaches the offset/shape checks
                    {
                        var digits = Enumerable.Range(8, hEnd - 8).Where(i => b[i] is >= (byte)'0' and <= (byte)'9').ToList();
                        if (digits.Count > 0) b[digits[rng.Next(digits.Count)]] = (byte)('0' + rng.Next(10));
                        break;
                    }
                case 7 when hEnd > 8: // replace a structural or quote character
                    {
                        var special = Enumerable.Range(8, hEnd - 8).Where(i => b[i] is (byte)'{' or (byte)'}' or (byte)'[' or (byte)']' or (byte)'"' or (byte)',' or (byte)':').ToList();
                        if (special.Count > 0) b[special[rng.Next(special.Count)]] = "{}[]\",: -0a\\"u8[rng.Next(12)];
                        break;
                    }
                case 8 when b.Count > 8: // delete a range
                    {
                        int at = rng.Next(8, b.Count);
                        b.RemoveRange(at, Math.Min(b.Count - at, rng.Next(1, 9)));
                        break;
                    }
                case 9 when hEnd > 8: // dtype swap: a valid-looking dtype of another size
                    {
                        var s = Encoding.UTF8.GetString(CollectionsMarshal.AsSpan(b)[8..hEnd]);
                        string[] names = ["F32", "F64", "BF16", "F16", "I64", "I32", "U8", "BOOL", "I8", "U16", "F8_E4M3", "X9"];
                        var from = names[rng.Next(7)];
                        int idx = s.IndexOf("\"" + from + "\"", StringComparison.Ordinal);
                        if (idx >= 0)
                        {
                            var replaced = s[..idx] + "\"" + names[rng.Next(names.Length)] + "\"" + s[(idx + from.Length + 2)..];
                            var rb = Encoding.UTF8.GetBytes(replaced);
                            b.RemoveRange(8, hEnd - 8);
                            b.InsertRange(8, rb);
                            if (rng.Next(2) == 0) BinaryPrimitives.WriteUInt64LittleEndian(CollectionsMarshal.AsSpan(b), (ulong)rb.Length);
                        }
                        break;
                    }
                case 10 when hEnd > 8: // a \u escape (sometimes a lone surrogate) right after a quote
                    {
                        var quotes = Enumerable.Range(8, hEnd - 8).Where(i => b[i] == (byte)'"').ToList();
                        string[] escapes = ["\\ud800", "\\udfff", "\\ud83d\\ude00", "\\u0041", "\\u00", "\\", "\\n"];
                        if (quotes.Count > 0) b.InsertRange(quotes[rng.Next(quotes.Count)] + 1, Encoding.UTF8.GetBytes(escapes[rng.Next(escapes.Length)]));
                        break;
                    }
                default:
                    break;
            }
        }
        return b.ToArray();
    }
}
