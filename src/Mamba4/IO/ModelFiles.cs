using System.Text.Json;
using Mamba4.Nn;
using Mamba4.Tensors;

namespace Mamba4.IO;

/// <summary>Saving and loading module weights as safetensors, by PyTorch/HF parameter name.</summary>
public static class ModelFiles
{
    /// <summary>Writes every parameter (F32) under its dotted name.</summary>
    public static void SaveSafetensors(this Module module, string path, IReadOnlyDictionary<string, string>? metadata = null) =>
        Safetensors.Save(path, module.NamedParameters(), metadata ?? new Dictionary<string, string> { ["format"] = "pt" });

    /// <summary>Loads weights from one or more safetensors files (the shards of one checkpoint).</summary>
    public static LoadReport LoadSafetensors(this Module module, IReadOnlyList<string> files, bool strict = true, IEnumerable<string>? ignorable = null)
    {
        var opened = new List<SafetensorsFile>();
        try
        {
            var source = new Dictionary<string, (Shape, Func<Tensor>)>();
            foreach (var f in files)
            {
                var file = SafetensorsFile.Open(f);
                opened.Add(file);
                foreach (var info in file.Tensors)
                {
                    if (source.ContainsKey(info.Name))
                        throw new InvalidDataException($"{f}: tensor '{info.Name}' also appears in another shard");
                    var name = info.Name;
                    if (info.DType is not (DType.F32 or DType.F16 or DType.BF16 or DType.F64))
                    {
                        if (module.NamedParameters().Any(p => p.Name == name))
                            throw new InvalidDataException($"{f}: tensor '{name}' has dtype {info.DTypeName}; weights must be F32, F16, BF16 or F64");
                        continue;
                    }
                    source[name] = (info.Shape, () => file.Get(name, DType.F32));
                }
            }
            var optional = (ignorable ?? []).ToDictionary(n => n, n => n);
            return StateDict.Load(module, source, string.Join(", ", files), strict, optional);
        }
        finally
        {
            foreach (var f in opened) f.Dispose();
        }
    }

    public static LoadReport LoadSafetensors(this Module module, string path, bool strict = true) => module.LoadSafetensors([path], strict);

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
