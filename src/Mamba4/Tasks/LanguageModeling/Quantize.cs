using System.Text.Json;
using System.Text.Json.Nodes;
using Mamba4.IO;
using Mamba4.Tensors;

namespace Mamba4.Tasks.LanguageModeling;

/// <summary>`mamba4 quantize`: a language model directory rewritten with its Linear/Embedding/lm_head weights in int8
/// (<see cref="WeightQuantization"/>) or in BF16/F16; everything else F32.</summary>
public sealed record QuantizeSettings
{
    public required string Model { get; init; }
    public required string Out { get; init; }
    /// <summary>Weight-only int8 with per-output-channel scales.</summary>
    public bool Int8 { get; init; }
    /// <summary>Or a plain conversion of those weights: F32, BF16 or F16.</summary>
    public DType? DType { get; init; }

    public void Validate()
    {
        if (Int8 == (DType is not null)) throw new ArgumentException("give exactly one of --int8 and --dtype bf16|f16|f32");
        if (DType is { } t && t is not (Tensors.DType.F32 or Tensors.DType.BF16 or Tensors.DType.F16))
            throw new ArgumentException($"--dtype {t}: expected f32, bf16 or f16");
        if (Path.GetFullPath(Model).TrimEnd('/') == Path.GetFullPath(Out).TrimEnd('/'))
            throw new ArgumentException("--out must be another directory than --model");
        if (File.Exists(Path.Combine(Out, "model.safetensors")) || File.Exists(Path.Combine(Out, "model.safetensors.index.json")))
            throw new IOException($"--out {Out} already holds a model; choose an empty or new directory");
    }
}

public sealed record QuantizeResult(string Out, string Format, int Converted, int Kept, long BytesBefore, long BytesAfter)
{
    public string Summary => $"{Out}: {Converted} weights as {Format}, {Kept} tensors F32; weight files {BytesBefore:N0} → {BytesAfter:N0} bytes";
}

public static class Quantize
{
    public static QuantizeResult Run(QuantizeSettings settings, TextWriter log)
    {
        settings.Validate();
        var configPath = Path.Combine(settings.Model, "config.json");
        var config = JsonNode.Parse(File.ReadAllText(configPath)) as JsonObject ?? throw new FormatException($"{configPath}: expected a JSON object");
        long before = ModelFiles.WeightFiles(settings.Model).Sum(f => new FileInfo(f).Length);
        using var model = LanguageModelFiles.Load(settings.Model, new ModelLoadOptions { WeightDType = Tensors.DType.F32 }).AsModule;
        var narrow = ModelFiles.NarrowCandidates(model);
        var tensors = new List<(string Name, Tensor Tensor)>();
        var made = new List<Tensor>();   // the converted copies, disposed at the end (the model's own go with it)
        int converted = 0;
        try
        {
            foreach (var (name, p) in model.NamedParameters())
            {
                if (!narrow.Contains(p)) { tensors.Add((name, p)); continue; }
                converted++;
                if (settings.Int8)
                {
                    var (q, s) = WeightQuantization.Quantize(p, name);
                    made.Add(q);
                    made.Add(s);
                    tensors.Add((name, q));
                    tensors.Add((name + WeightQuantization.ScaleSuffix, s));
                }
                else
                {
                    made.Add(p.To(settings.DType!.Value));
                    tensors.Add((name, made[^1]));
                }
            }
            Directory.CreateDirectory(settings.Out);
            var weights = Path.Combine(settings.Out, "model.safetensors");
            Safetensors.Save(weights, tensors, new Dictionary<string, string> { ["format"] = "pt" });
            config.Remove("quantization_config");
            if (settings.Int8) config["quantization_config"] = WeightQuantization.ConfigEntry();
            config["torch_dtype"] = settings.Int8 ? "int8" : settings.DType switch { Tensors.DType.BF16 => "bfloat16", Tensors.DType.F16 => "float16", _ => "float32" };
            AtomicFile.WriteAllText(Path.Combine(settings.Out, "config.json"), config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            foreach (var file in Directory.GetFiles(settings.Model))
            {
                var fileName = Path.GetFileName(file);
                if (fileName == "config.json" || fileName.StartsWith("model.safetensors", StringComparison.Ordinal)
                    || Path.GetExtension(fileName) is ".safetensors" or ".bin" or ".pt" or ".pth") continue;
                File.Copy(file, Path.Combine(settings.Out, fileName), overwrite: true);   // tokenizer, generation config
            }
            var format = settings.Int8 ? "I8 with F32 row scales" : settings.DType!.Value.ToString();
            var result = new QuantizeResult(settings.Out, format, converted, tensors.Count(t => t.Tensor.DType == Tensors.DType.F32 && !t.Name.EndsWith(WeightQuantization.ScaleSuffix, StringComparison.Ordinal)),
                before, new FileInfo(weights).Length);
            log.WriteLine(result.Summary);
            return result;
        }
        finally
        {
            foreach (var t in made) t.Dispose();
        }
    }
}
