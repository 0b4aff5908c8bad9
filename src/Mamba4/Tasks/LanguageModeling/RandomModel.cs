using System.Text.Json;
using System.Text.Json.Nodes;
using Mamba4.IO;
using Mamba4.Models;
using Mamba4.Tensors;

namespace Mamba4.Tasks.LanguageModeling;

/// <summary>
/// `mamba4 random-model`: a Hugging Face model directory of a real shape with random weights (config.json, sharded
/// safetensors and model.safetensors.index.json as save_pretrained writes them), for measuring memory and speed at
/// 1.4B–7B without downloading checkpoints. Every tensor is written in <see cref="DType"/> (BF16 by default, as the
/// published checkpoints); matrices ~ U(±0.02·√3) (std 0.02), A_log = log(1..N), D = 1, norms 1, dt_proj.bias the
/// inverse softplus of 0.01, conv1d U(±½). Generated tensor by tensor, one shard in memory at a time.
/// </summary>
public static class RandomModel
{
    /// <summary>The shapes of the published checkpoints (their config.json fields that matter).</summary>
    public static readonly IReadOnlyDictionary<string, JsonObject> Shapes = new Dictionary<string, JsonObject>
    {
        ["mamba-130m"] = Mamba(768, 24),
        ["mamba-1.4b"] = Mamba(2048, 48),
        ["mamba-2.8b"] = Mamba(2560, 64),
        ["falcon-mamba-7b"] = new()
        {
            ["model_type"] = "falcon_mamba", ["hidden_size"] = 4096, ["num_hidden_layers"] = 64, ["vocab_size"] = 65024,
            ["state_size"] = 16, ["expand"] = 16, ["intermediate_size"] = 8192, ["conv_kernel"] = 4, ["time_step_rank"] = 256,
            ["use_bias"] = false, ["use_conv_bias"] = true, ["layer_norm_epsilon"] = 1e-5, ["mixer_rms_eps"] = 1e-6,
            ["tie_word_embeddings"] = false, ["residual_in_fp32"] = true,
        },
    };

    private static JsonObject Mamba(int hidden, int layers) => new()
    {
        ["model_type"] = "mamba", ["hidden_size"] = hidden, ["num_hidden_layers"] = layers, ["vocab_size"] = 50280,
        ["state_size"] = 16, ["expand"] = 2, ["intermediate_size"] = 2 * hidden, ["conv_kernel"] = 4, ["time_step_rank"] = (hidden + 15) / 16,
        ["use_bias"] = false, ["use_conv_bias"] = true, ["layer_norm_epsilon"] = 1e-5, ["tie_word_embeddings"] = true, ["residual_in_fp32"] = true,
    };

    /// <summary>Writes the directory; returns the number of parameters and bytes written.</summary>
    public static (long Parameters, long Bytes) Write(string shape, string output, DType dtype = DType.BF16, long shardBytes = 2L << 30, int seed = 1, TextWriter? log = null)
    {
        if (shape == "mamba2-2.7b")
            throw new NotSupportedException("mamba2-2.7b: the Mamba-2 configuration and its parameter shapes come with the Mamba-2 model (issue 18 item 1); add it here with Mamba2LM.Shapes once it exists");
        if (!Shapes.TryGetValue(shape, out var template))
            throw new ArgumentException($"--shape {shape}: expected one of {string.Join(", ", Shapes.Keys)} (mamba2-2.7b: not yet)");
        if (dtype is not (DType.F32 or DType.BF16 or DType.F16)) throw new ArgumentException($"--dtype {dtype}: expected f32, bf16 or f16");
        if (File.Exists(Path.Combine(output, "config.json"))) throw new IOException($"--out {output} already holds a model; choose a new directory");
        var json = (JsonObject)template.DeepClone();
        json["torch_dtype"] = dtype switch { DType.BF16 => "bfloat16", DType.F16 => "float16", _ => "float32" };
        json["mamba4_random_weights"] = true;
        var config = MambaConfig.FromJson(json.ToJsonString(), shape);
        var tensors = MambaLM.Shapes(config).ToList();
        // Shards in order, each up to shardBytes (a tensor larger than that gets a shard of its own).
        var shards = new List<List<(string Name, Shape Shape)>> { new() };
        long filled = 0, total = 0;
        foreach (var t in tensors)
        {
            long bytes = t.Shape.NumElements * dtype.ElementSize();
            if (filled > 0 && filled + bytes > shardBytes) { shards.Add([]); filled = 0; }
            shards[^1].Add(t);
            filled += bytes;
            total += bytes;
        }
        Directory.CreateDirectory(output);
        var map = new JsonObject();
        for (int i = 0; i < shards.Count; i++)
        {
            var file = shards.Count == 1 ? "model.safetensors" : $"model-{i + 1:D5}-of-{shards.Count:D5}.safetensors";
            var made = new List<(string, Tensor)>();
            try
            {
                foreach (var (name, s) in shards[i])
                {
                    made.Add((name, Values(name, s, dtype, seed)));
                    map[name] = file;
                }
                Safetensors.Save(Path.Combine(output, file), made, new Dictionary<string, string> { ["format"] = "pt" });
            }
            finally { foreach (var (_, t) in made) t.Dispose(); }
            log?.WriteLine($"{file}: {shards[i].Count} tensors");
        }
        if (shards.Count > 1)
            AtomicFile.WriteAllText(Path.Combine(output, "model.safetensors.index.json"),
                new JsonObject { ["metadata"] = new JsonObject { ["total_size"] = total }, ["weight_map"] = map }.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        AtomicFile.WriteAllText(Path.Combine(output, "config.json"), json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        return (tensors.Sum(t => t.Shape.NumElements), total);
    }

    /// <summary>One tensor's values (see the class comment), drawn in parallel row blocks from seeds of (seed, name, block).</summary>
    private static Tensor Values(string name, Shape shape, DType dtype, int seed)
    {
        long n = shape.NumElements;
        int cols = shape.Rank >= 2 ? (int)(n / shape[0]) : (int)n;
        var t = Tensor.Empty(shape, dtype).Persist();
        var f32 = new float[n];
        Func<long, long, float> value = name switch
        {
            _ when name.EndsWith("A_log") => (_, c) => MathF.Log(c + 1),
            _ when name.EndsWith(".D") || name.EndsWith("norm.weight") || name.EndsWith("norm_f.weight") => (_, _) => 1f,
            _ when name.EndsWith("dt_proj.bias") => (_, _) => MathF.Log(MathF.Exp(0.01f) - 1),
            _ when name.EndsWith("conv1d.bias") => (_, _) => 0f,
            _ => null!,
        };
        float bound = name.Contains("conv1d") ? 0.5f : 0.02f * MathF.Sqrt(3);
        int hash = seed;
        foreach (char ch in name) hash = unchecked(hash * 31 + ch);   // deterministic (string.GetHashCode is per process)
        Parallel.For(0, (int)((n + 65535) / 65536), block =>
        {
            var rng = new Random(unchecked(hash * 1_000_003 + block));
            long end = Math.Min(n, (block + 1) * 65536L);
            for (long i = block * 65536L; i < end; i++)
                f32[i] = value is null ? (float)(rng.NextDouble() * 2 - 1) * bound : value(i / cols, i % cols);
        });
        var source = Tensor.From(f32, shape.ToArray());
        t.CopyFrom(source);
        source.Dispose();
        return t;
    }
}
