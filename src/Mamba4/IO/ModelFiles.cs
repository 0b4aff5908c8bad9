using System.Numerics;
using System.Text.Json;
using Mamba4.Models;
using Mamba4.Nn;
using Linear = Mamba4.Nn.Linear;
using Mamba4.Tensors;

namespace Mamba4.IO;

/// <summary>Saving and loading module weights as safetensors, by PyTorch/HF parameter name.</summary>
public static class ModelFiles
{
    /// <summary>Writes every parameter (F32) under its dotted name.</summary>
    public static void SaveSafetensors(this Module module, string path, IReadOnlyDictionary<string, string>? metadata = null) =>
        Safetensors.Save(path, module.NamedParameters(), metadata ?? new Dictionary<string, string> { ["format"] = "pt" });

    /// <summary>Loads weights from one or more safetensors files (the shards of one checkpoint) into a model already built.</summary>
    public static LoadReport LoadSafetensors(this Module module, IReadOnlyList<string> files, bool strict = true, IEnumerable<string>? ignorable = null)
    {
        var opened = new List<SafetensorsFile>();
        try
        {
            var parameters = module.NamedParameters().Select(p => p.Name).ToHashSet();
            var source = Open(files, opened, parameters.Contains);
            var optional = (ignorable ?? []).ToDictionary(n => n, n => n);
            return StateDict.Load(module, Readers(source), string.Join(", ", files), strict, optional);
        }
        finally
        {
            foreach (var f in opened) f.Dispose();
        }
    }

    public static LoadReport LoadSafetensors(this Module module, string path, bool strict = true) => module.LoadSafetensors([path], strict);

    /// <summary>
    /// Builds a model and fills it from safetensors weight files. What can be checked from the files' headers alone is
    /// checked before anything is allocated: every tensor of <paramref name="expected"/> (the parameters the configuration
    /// implies) is present with its shape and no other is (a mismatch names the tensor, the expected and the found shape),
    /// an I8 weight has its F32 row scale and config.json its quantization_config (<see cref="WeightQuantization"/>), and
    /// the model fits in memory (<see cref="CheckMemory"/>). Then <paramref name="create"/> builds it and the weights are
    /// read in: nn.Linear and nn.Embedding weights (and lm_head) in the type <see cref="WeightType"/> picks — a weight
    /// already of that type is the memory-mapped file itself, no copy — everything else as F32. The weights are scanned:
    /// a NaN or ±Inf fails the load naming the file, the tensor and the first bad index, unless
    /// <see cref="ModelLoadOptions.AllowNonFinite"/>. The model ends on <paramref name="device"/> (default: the CPU).
    /// </summary>
    /// <param name="ignorable">Tensors the files may hold beside the model's (a tied head's copy).</param>
    public static T Load<T>(IReadOnlyList<string> files, ParameterShapes expected, Func<T> create, ModelLoadOptions? options = null,
        Device? device = null, IEnumerable<string>? ignorable = null) where T : Module
    {
        options ??= ModelLoadOptions.Default;
        var target = device ?? Device.Cpu;
        string what = string.Join(", ", files);
        var opened = new List<SafetensorsFile>();
        try
        {
            var names = expected.Select(p => p.Name).ToHashSet();
            var source = Open(files, opened, names.Contains);
            var optional = (ignorable ?? []).ToHashSet();
            var scales = TakeScales(source, files);
            var report = new LoadReport(
                expected.Where(p => !source.ContainsKey(p.Name)).Select(p => p.Name).ToList(),
                source.Keys.Where(k => !names.Contains(k) && !optional.Contains(k)).ToList(),
                expected.Where(p => source.TryGetValue(p.Name, out var s) && s.Info.Shape != p.Shape)
                    .Select(p => $"{p.Name}: expected {p.Shape}, found {source[p.Name].Info.Shape}").ToList());
            if (!report.IsClean) throw new InvalidDataException($"{what}: the weights do not match the model's configuration ({report})");
            CheckMemory(expected, target, options, what, (name, shape) =>
                shape.Rank == 2 && name.EndsWith("weight", StringComparison.Ordinal) && source.TryGetValue(name, out var s)
                    ? WeightType(s.Info.DType!.Value, options.WeightDType, target).ElementSize() : sizeof(float));
            T model;
            using (Init.SkipValues()) model = create();   // every parameter is read below: no random values to draw
            try
            {
                var narrow = NarrowCandidates(model);
                foreach (var (name, p) in model.NamedParameters())
                {
                    var (file, info) = source.TryGetValue(name, out var s) ? s : throw new InvalidDataException($"{what}: tensor '{name}' is missing");
                    var fileType = info.DType!.Value;
                    var type = narrow.Contains(p) ? WeightType(fileType, options.WeightDType, target) : DType.F32;
                    if (type == DType.F32 && fileType == DType.F32 && narrow.Contains(p))
                    {
                        // A large F32 weight stored as F32 is the mapped file too (copy-on-write: training writes private pages).
                        p.ReplaceWith(file.GetView(name));
                        CheckFinite(p, file, name, options);
                        continue;
                    }
                    if (type == DType.F32)
                    {
                        using (var t = ReadF32(file, name, scales)) p.CopyFrom(t);
                        CheckFinite(p, file, name, options);
                        continue;
                    }
                    var value = type == fileType ? file.GetView(name) : ConvertTo(ReadF32(file, name, scales), type);
                    var scale = type == DType.I8 ? ReadScale(scales[name].File, name) : null;
                    CheckFinite(scale ?? value, file, scale is null ? name : name + WeightQuantization.ScaleSuffix, options);
                    p.ReplaceWith(value, scale);
                    p.RequiresGrad = false;
                }
                // The F32 blocks the narrow weights replaced (never touched) and the conversion buffers go back to the system.
                if (model.Parameters().Any(p => p.DType != DType.F32)) CpuAllocator.Shared.Trim();
                model.To(target);
                return model;
            }
            catch
            {
                model.Dispose();
                throw;
            }
        }
        finally
        {
            foreach (var f in opened) f.Dispose();
        }
    }

    /// <summary>
    /// The type a Linear/Embedding weight stored as <paramref name="fileType"/> is kept in: the requested one (--dtype), else
    /// the file's own (BF16, F16, I8; F32 and F64 as F32). I8 stays I8 on the CPU and becomes BF16 on a GPU.
    /// </summary>
    public static DType WeightType(DType fileType, DType? requested, Device device)
    {
        var type = requested ?? (fileType.IsNarrowWeight() ? fileType : DType.F32);
        if (type is not (DType.F32 or DType.BF16 or DType.F16 or DType.I8))
            throw new ArgumentException($"weights can be kept as F32, BF16 or F16 (or I8 from a quantized checkpoint), not {type}");
        if (type == DType.I8 && fileType != DType.I8)
            throw new ArgumentException("I8 weights come from a quantized checkpoint (mamba4 quantize --int8), not from converting at load");
        return type == DType.I8 && !device.IsCpu ? DType.BF16 : type;
    }

    /// <summary>The weights that may stay narrow: every nn.Linear and nn.Embedding weight, and a model's own lm_head.weight.</summary>
    public static HashSet<Tensor> NarrowCandidates(Module model)
    {
        var set = new HashSet<Tensor>(ReferenceEqualityComparer.Instance);
        foreach (var m in model.Modules())
            if (m is Linear l) set.Add(l.Weight);
            else if (m is Nn.Embedding e) set.Add(e.Weight);
        foreach (var (name, p) in model.NamedParameters())
            if (name == "lm_head.weight") set.Add(p);
        return set;
    }

    /// <summary>Tensor <paramref name="name"/> as F32 (an I8 one times its row scales).</summary>
    private static Tensor ReadF32(SafetensorsFile file, string name, Dictionary<string, (SafetensorsFile File, SafetensorsTensorInfo Info)> scales)
    {
        var t = file.Get(name, DType.F32);
        if (!scales.TryGetValue(name, out var s)) return t;
        using var scale = ReadScale(s.File, name);
        var values = t.AsSpan<float>();
        var rowScale = scale.AsSpan<float>();
        int cols = t.Shape[1];
        for (int r = 0; r < rowScale.Length; r++)
            for (int i = 0; i < cols; i++) values[r * cols + i] *= rowScale[r];
        return t;
    }

    /// <summary>The row scales of I8 weight <paramref name="name"/>; a negative one is refused (s = max |W[o, :]| / 127 ≥ 0).</summary>
    private static Tensor ReadScale(SafetensorsFile file, string name)
    {
        var scale = file.Get(name + WeightQuantization.ScaleSuffix, DType.F32);
        var values = scale.AsSpan<float>();
        for (int row = 0; row < values.Length; row++)
        {
            if (!(values[row] < 0)) continue;   // NaN and ±Inf are left to the finiteness check (--allow-nonfinite)
            float value = values[row];
            scale.Dispose();
            throw new InvalidDataException($"{file.Path}: tensor '{name}{WeightQuantization.ScaleSuffix}' holds {value} at index {row}; a row scale is max |W[row, :]| / 127, never negative");
        }
        return scale;
    }

    private static Tensor ConvertTo(Tensor f32, DType type)
    {
        using (f32) return f32.To(type);
    }

    /// <summary>
    /// Moves every "&lt;weight&gt;_scale" tensor out of <paramref name="source"/> into the returned map (by weight name), after
    /// checking the int8 layout: an I8 tensor needs an F32 scale of [rows] and config.json a quantization_config; a scale
    /// needs an I8 weight. Each error is one line naming the tensor.
    /// </summary>
    private static Dictionary<string, (SafetensorsFile File, SafetensorsTensorInfo Info)> TakeScales(
        Dictionary<string, (SafetensorsFile File, SafetensorsTensorInfo Info)> source, IReadOnlyList<string> files)
    {
        var scales = new Dictionary<string, (SafetensorsFile, SafetensorsTensorInfo)>();
        var int8 = source.Where(kv => kv.Value.Info.DType == DType.I8).ToList();
        foreach (var (name, (file, info)) in source.Where(kv => kv.Key.EndsWith(WeightQuantization.ScaleSuffix, StringComparison.Ordinal)).ToList())
        {
            var weight = name[..^WeightQuantization.ScaleSuffix.Length];
            if (!source.TryGetValue(weight, out var w) || w.Info.DType != DType.I8) continue;   // not a scale: left to the name check
            if (info.DType != DType.F32 || info.Shape.Rank != 1 || info.Shape[0] != w.Info.Shape[0])
                throw new InvalidDataException($"{file.Path}: tensor '{name}' must be F32 [{w.Info.Shape[0]}] (one scale per row of '{weight}' {w.Info.Shape}), found {info.DTypeName}{info.Shape}");
            scales[weight] = (file, info);
            source.Remove(name);
        }
        if (int8.Count == 0) return scales;
        var config = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(files[0]))!, "config.json");
        if (!WeightQuantization.Declared(config))
            throw new InvalidDataException($"{int8[0].Value.File.Path}: tensor '{int8[0].Key}' is I8, but {config} has no quantization_config (expected \"quant_method\": \"{WeightQuantization.Method}\")");
        foreach (var (name, (file, info)) in int8)
        {
            if (info.Shape.Rank != 2) throw new InvalidDataException($"{file.Path}: tensor '{name}' is I8 {info.Shape}; int8 weights are matrices [out, in]");
            if (!scales.ContainsKey(name)) throw new InvalidDataException($"{file.Path}: tensor '{name}' is I8 but its scale '{name}{WeightQuantization.ScaleSuffix}' (F32 [{info.Shape[0]}]) is missing");
        }
        return scales;
    }

    private static void CheckFinite(Tensor t, SafetensorsFile file, string name, ModelLoadOptions options)
    {
        var (index, value) = FirstNonFinite(t);
        if (index < 0) return;
        var bad = float.IsNaN(value) ? "NaN" : value > 0 ? "+Inf" : "-Inf";
        var message = $"{file.Path}: tensor '{name}' holds {bad} at index {index} (its first non-finite value)";
        if (!options.AllowNonFinite) throw new InvalidDataException(message + "; --allow-nonfinite loads such weights with a warning");
        options.Warn?.Invoke(message + "; loaded as it is (--allow-nonfinite)");
    }

    /// <summary>Room beside the parameters while loading and running a model (the estimate's fixed part).</summary>
    public const long WorkingMargin = 64L << 20;

    /// <summary>
    /// The memory a model of these parameters needs: its values (4 bytes each, or <paramref name="bytesPerElement"/> of
    /// the tensor's name and shape), one F32 copy of the largest (the conversion buffer while loading) and <see cref="WorkingMargin"/>.
    /// </summary>
    public static long EstimateBytes(ParameterShapes shapes, Func<string, Shape, int>? bytesPerElement = null) =>
        checked(shapes.Sum(p => p.Shape.NumElements * (bytesPerElement?.Invoke(p.Name, p.Shape) ?? sizeof(float)))
                + sizeof(float) * shapes.LargestElements + WorkingMargin);

    /// <summary>
    /// Refuses (<see cref="InsufficientMemoryException"/>, naming the estimate and the amount available) a model whose
    /// <see cref="EstimateBytes"/> exceeds the host memory available (<see cref="ModelLoadOptions.HostMemoryLimit"/>, else
    /// the runtime's figure) or, for a GPU <paramref name="device"/>, the device's free memory. Loading always goes
    /// through host memory, so both count.
    /// </summary>
    public static void CheckMemory(ParameterShapes shapes, Device device, ModelLoadOptions options, string what, Func<string, Shape, int>? bytesPerElement = null)
    {
        long need = EstimateBytes(shapes, bytesPerElement);
        long f32 = EstimateBytes(shapes);
        string model = $"the model needs about {Bytes(need)} ({shapes.Elements:N0} parameters{(need == f32 ? " as F32" : "")}, plus working memory)";
        long host = options.HostMemoryLimit ?? GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        if (need > host) throw new InsufficientMemoryException($"{what}: {model}, more than the {Bytes(host)} of memory available");
        if (device.IsCpu || Backends.Backend.For(device) is not Backends.Cuda.CudaBackend gpu) return;
        var (free, _) = gpu.MemoryInfo();
        if (need > free) throw new InsufficientMemoryException($"{what}: {model}, more than the {Bytes(free)} free on {device}");
    }

    private static string Bytes(long n) =>
        n >= 1L << 30 ? $"{n / (double)(1L << 30):F1} GiB" : n >= 1L << 20 ? $"{n / (double)(1L << 20):F0} MiB" : $"{n:N0} bytes";

    /// <summary>The flat index and value of the first NaN or ±Inf of a floating-point tensor, or (−1, 0) (I8: always finite).</summary>
    internal static unsafe (long Index, float Value) FirstNonFinite(Tensor t)
    {
        if (t.DType == DType.I8) return (-1, 0);
        if (!t.Device.IsCpu)
        {
            using var host = t.To(Device.Cpu);
            return FirstNonFinite(host);
        }
        if (t.DType != DType.F32)
        {
            // A BF16/F16 weight is scanned through a small F32 buffer: a widened copy of it would touch (and, pooled, keep) its F32 size.
            var buffer = new float[65536];
            for (long start = 0, n = t.NumElements; start < n; start += buffer.Length)
            {
                int count = (int)Math.Min(buffer.Length, n - start);
                fixed (float* b = buffer)
                    DTypeConvert.Convert((byte*)t.DataPointer + start * t.DType.ElementSize(), t.DType, b, DType.F32, count);
                int i = FirstNonFinite(buffer.AsSpan(0, count));
                if (i >= 0) return (start + i, buffer[i]);
            }
            return (-1, 0);
        }
        float* p = (float*)t.DataPointer;
        for (long start = 0, n = t.NumElements; start < n; start += int.MaxValue / 2)
        {
            var chunk = new ReadOnlySpan<float>(p + start, (int)Math.Min(int.MaxValue / 2, n - start));
            int i = FirstNonFinite(chunk);
            if (i >= 0) return (start + i, chunk[i]);
        }
        return (-1, 0);
    }

    /// <summary>Vectorised: x − x is 0 for every finite x and NaN for NaN and ±Inf.</summary>
    private static int FirstNonFinite(ReadOnlySpan<float> values)
    {
        int i = 0, width = Vector<float>.Count;
        for (; i <= values.Length - width; i += width)
        {
            var v = new Vector<float>(values[i..]);
            if (!Vector.EqualsAll(v - v, Vector<float>.Zero)) break;
        }
        for (; i < values.Length; i++)
            if (!float.IsFinite(values[i])) return i;
        return -1;
    }

    /// <summary>Opens every file (parsing its header, reading no data) and indexes its tensors by name; a weight
    /// (<paramref name="isWeight"/>) must be a floating-point type, other tensors of other types are skipped.</summary>
    private static Dictionary<string, (SafetensorsFile File, SafetensorsTensorInfo Info)> Open(IReadOnlyList<string> files, List<SafetensorsFile> opened, Func<string, bool> isWeight)
    {
        var source = new Dictionary<string, (SafetensorsFile, SafetensorsTensorInfo)>();
        foreach (var f in files)
        {
            var file = SafetensorsFile.Open(f);
            opened.Add(file);
            foreach (var info in file.Tensors)
            {
                if (source.ContainsKey(info.Name))
                    throw new InvalidDataException($"{f}: tensor '{info.Name}' also appears in another shard");
                if (info.DType is not (DType.F32 or DType.F16 or DType.BF16 or DType.F64 or DType.I8))
                {
                    if (isWeight(info.Name))
                        throw new InvalidDataException($"{f}: tensor '{info.Name}' has dtype {info.DTypeName}; weights must be F32, F16, BF16, F64 or I8 (with row scales)");
                    continue;
                }
                source[info.Name] = (file, info);
            }
        }
        return source;
    }

    private static Dictionary<string, (Shape, Func<Tensor>)> Readers(Dictionary<string, (SafetensorsFile File, SafetensorsTensorInfo Info)> source) =>
        source.ToDictionary(kv => kv.Key, kv => (kv.Value.Info.Shape, (Func<Tensor>)(() => kv.Value.File.Get(kv.Key, DType.F32))));

    /// <summary>The weight files of an HF model directory: model.safetensors, or the shards a model.safetensors.index.json lists.</summary>
    public static IReadOnlyList<string> WeightFiles(string directory)
    {
        if (!Directory.Exists(directory)) throw new DirectoryNotFoundException($"model directory not found: {directory}");
        var single = Path.Combine(directory, "model.safetensors");
        if (File.Exists(single)) return [single];
        var index = Path.Combine(directory, "model.safetensors.index.json");
        if (!File.Exists(index))
            throw new FileNotFoundException($"{directory}: neither model.safetensors nor model.safetensors.index.json is present (only safetensors weights are supported)");
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(index));
            if (!doc.RootElement.TryGetProperty("weight_map", out var map) || map.ValueKind != JsonValueKind.Object)
                throw new InvalidDataException($"{index}: expected an object 'weight_map' of tensor name → shard file");
            var shards = new List<string>();
            foreach (var entry in map.EnumerateObject())
            {
                if (entry.Value.ValueKind != JsonValueKind.String) throw new InvalidDataException($"{index}: weight_map['{entry.Name}'] must be a file name");
                var file = entry.Value.GetString()!;
                if (file.Contains('/') || file.Contains('\\') || file.Contains("..")) throw new InvalidDataException($"{index}: shard name '{file}' must be a plain file name");
                var full = Path.Combine(directory, file);
                if (!shards.Contains(full)) shards.Add(full);
            }
            foreach (var s in shards)
                if (!File.Exists(s)) throw new FileNotFoundException($"{index}: shard {Path.GetFileName(s)} is missing", s);
            return shards;
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{index}: not valid JSON (line {e.LineNumber + 1}): {e.Message}", e);
        }
    }
}
