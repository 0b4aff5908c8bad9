using System.Numerics;
using System.Text.Json;
using Mamba4.Models;
using Mamba4.Nn;
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
    /// and the model fits in memory (<see cref="CheckMemory"/>). Then <paramref name="create"/> builds it, the weights are
    /// copied in (converted to F32) and scanned: a NaN or ±Inf fails the load naming the file, the tensor and the first bad
    /// index, unless <see cref="ModelLoadOptions.AllowNonFinite"/>. The model ends on <paramref name="device"/> (default: the CPU).
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
            var report = new LoadReport(
                expected.Where(p => !source.ContainsKey(p.Name)).Select(p => p.Name).ToList(),
                source.Keys.Where(k => !names.Contains(k) && !optional.Contains(k)).ToList(),
                expected.Where(p => source.TryGetValue(p.Name, out var s) && s.Info.Shape != p.Shape)
                    .Select(p => $"{p.Name}: expected {p.Shape}, found {source[p.Name].Info.Shape}").ToList());
            if (!report.IsClean) throw new InvalidDataException($"{what}: the weights do not match the model's configuration ({report})");
            CheckMemory(expected, target, options, what);
            var model = create();
            try
            {
                StateDict.Load(model, Readers(source), what, strict: true, optional.ToDictionary(n => n, n => n));
                foreach (var (name, p) in model.NamedParameters())
                    if (FirstNonFinite(p) is var (index, value) && index >= 0)
                    {
                        var bad = float.IsNaN(value) ? "NaN" : value > 0 ? "+Inf" : "-Inf";
                        var message = $"{source[name].File.Path}: tensor '{name}' holds {bad} at index {index} (its first non-finite value)";
                        if (!options.AllowNonFinite) throw new InvalidDataException(message + "; --allow-nonfinite loads such weights with a warning");
                        options.Warn?.Invoke(message + "; loaded as it is (--allow-nonfinite)");
                    }
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

    /// <summary>Room beside the parameters while loading and running a model (the estimate's fixed part).</summary>
    public const long WorkingMargin = 64L << 20;

    /// <summary>
    /// The memory a model of these parameters needs: its values as F32, one more copy of the largest (the conversion
    /// buffer while loading) and <see cref="WorkingMargin"/>.
    /// </summary>
    public static long EstimateBytes(ParameterShapes shapes) => checked(sizeof(float) * (shapes.Elements + shapes.LargestElements) + WorkingMargin);

    /// <summary>
    /// Refuses (<see cref="InsufficientMemoryException"/>, naming the estimate and the amount available) a model whose
    /// <see cref="EstimateBytes"/> exceeds the host memory available (<see cref="ModelLoadOptions.HostMemoryLimit"/>, else
    /// the runtime's figure) or, for a GPU <paramref name="device"/>, the device's free memory. Loading always goes
    /// through host memory, so both count.
    /// </summary>
    public static void CheckMemory(ParameterShapes shapes, Device device, ModelLoadOptions options, string what)
    {
        long need = EstimateBytes(shapes);
        string model = $"the model needs about {Bytes(need)} ({shapes.Elements:N0} parameters as F32, plus working memory)";
        long host = options.HostMemoryLimit ?? GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        if (need > host) throw new InsufficientMemoryException($"{what}: {model}, more than the {Bytes(host)} of memory available");
        if (device.IsCpu || Backends.Backend.For(device) is not Backends.Cuda.CudaBackend gpu) return;
        var (free, _) = gpu.MemoryInfo();
        if (need > free) throw new InsufficientMemoryException($"{what}: {model}, more than the {Bytes(free)} free on {device}");
    }

    private static string Bytes(long n) =>
        n >= 1L << 30 ? $"{n / (double)(1L << 30):F1} GiB" : n >= 1L << 20 ? $"{n / (double)(1L << 20):F0} MiB" : $"{n:N0} bytes";

    /// <summary>The flat index and value of the first NaN or ±Inf of an F32 tensor, or (−1, 0).</summary>
    internal static unsafe (long Index, float Value) FirstNonFinite(Tensor t)
    {
        if (!t.Device.IsCpu)
        {
            using var host = t.To(Device.Cpu);
            return FirstNonFinite(host);
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
                if (info.DType is not (DType.F32 or DType.F16 or DType.BF16 or DType.F64))
                {
                    if (isWeight(info.Name))
                        throw new InvalidDataException($"{f}: tensor '{info.Name}' has dtype {info.DTypeName}; weights must be F32, F16, BF16 or F64");
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
