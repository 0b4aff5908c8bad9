using System.Text.Json;
using System.Text.Json.Nodes;
using Mamba4.IO;
using Mamba4.Models;
using Mamba4.Tensors;

namespace Mamba4.Tasks.LanguageModeling;

/// <summary>
/// The config.json of the public checkpoints `mamba4 init --shape` writes, as Hugging Face publishes them (the weights
/// are random; the sizes, the names and the file layout are the real ones).
/// </summary>
public static class ModelShapes
{
    public static readonly string[] Names = ["mamba-130m", "mamba-1.4b", "mamba-2.8b", "mamba2-130m", "mamba2-2.7b", "falcon-mamba-7b"];

    /// <summary>The config.json text of <paramref name="name"/> with "torch_dtype" <paramref name="torchDtype"/>.</summary>
    public static string Config(string name, string torchDtype) => name switch
    {
        // state-spaces/mamba-130m-hf, mamba-1.4b-hf, mamba-2.8b-hf config.json (transformers 4.39 conversions; the 2.8b file is
        // quoted verbatim in several public repositories): hidden_size / num_hidden_layers / intermediate_size / time_step_rank
        // 768/24/1536/48, 2048/48/4096/128, 2560/64/5120/160; everything else is common to the three.
        "mamba-130m" => MambaHf(768, 24, 1536, 48, torchDtype),
        "mamba-1.4b" => MambaHf(2048, 48, 4096, 128, torchDtype),
        "mamba-2.8b" => MambaHf(2560, 64, 5120, 160, torchDtype),
        // state-spaces/mamba2-2.7b ships mamba_ssm's config (d_model 2560, n_layer 64, vocab 50277 padded to a multiple of 16 =
        // 50288, ssm_cfg layer Mamba2: d_state 128, headdim 64, ngroups 1, chunk 256); this is transformers' Mamba2Config form of
        // it (num_heads 80 = 2·2560/64), as the converted checkpoints carry it. mamba2-130m: d_model 768, 24 layers, 24 heads.
        "mamba2-130m" => Mamba2Hf(768, 24, 24, torchDtype),
        "mamba2-2.7b" => Mamba2Hf(2560, 64, 80, torchDtype),
        // tiiuae/falcon-mamba-7b config.json (transformers 4.43), verbatim but for torch_dtype: 64 layers of width 4096, d_inner
        // 8192 (its "expand": 16 is not what d_inner follows), time_step_rank 256, vocab 65024, untied head, no mixer_rms_eps
        // field (transformers' default 1e-6).
        "falcon-mamba-7b" => $$"""
            {
              "_name_or_path": "./",
              "architectures": ["FalconMambaForCausalLM"],
              "bos_token_id": 0,
              "conv_kernel": 4,
              "eos_token_id": 11,
              "expand": 16,
              "hidden_act": "silu",
              "hidden_size": 4096,
              "initializer_range": 0.1,
              "intermediate_size": 8192,
              "layer_norm_epsilon": 1e-05,
              "model_type": "falcon_mamba",
              "num_hidden_layers": 64,
              "pad_token_id": 11,
              "rescale_prenorm_residual": false,
              "residual_in_fp32": true,
              "state_size": 16,
              "tie_word_embeddings": false,
              "time_step_floor": 0.0001,
              "time_step_init_scheme": "random",
              "time_step_max": 0.1,
              "time_step_min": 0.001,
              "time_step_rank": 256,
              "time_step_scale": 1.0,
              "torch_dtype": "{{torchDtype}}",
              "transformers_version": "4.43.0.dev0",
              "use_bias": false,
              "use_cache": true,
              "use_conv_bias": true,
              "vocab_size": 65024
            }
            """,
        _ => throw new ArgumentException($"--shape must be one of {string.Join(", ", Names)}, got '{name}'"),
    };

    private static string MambaHf(int hidden, int layers, int inner, int rank, string torchDtype) => $$"""
        {
          "architectures": ["MambaForCausalLM"],
          "bos_token_id": 0,
          "conv_kernel": 4,
          "eos_token_id": 0,
          "expand": 2,
          "fused_add_norm": true,
          "hidden_act": "silu",
          "hidden_size": {{hidden}},
          "initializer_range": 0.1,
          "intermediate_size": {{inner}},
          "layer_norm_epsilon": 1e-05,
          "model_type": "mamba",
          "n_layer": {{layers}},
          "num_hidden_layers": {{layers}},
          "pad_token_id": 0,
          "pad_vocab_size_multiple": 8,
          "rescale_prenorm_residual": false,
          "residual_in_fp32": true,
          "rms_norm": true,
          "state_size": 16,
          "time_step_floor": 0.0001,
          "time_step_init_scheme": "random",
          "time_step_max": 0.1,
          "time_step_min": 0.001,
          "time_step_rank": {{rank}},
          "time_step_scale": 1.0,
          "torch_dtype": "{{torchDtype}}",
          "transformers_version": "4.39.0.dev0",
          "use_bias": false,
          "use_cache": true,
          "use_conv_bias": true,
          "vocab_size": 50280
        }
        """;

    // transformers' Mamba2Config fields; time_step_rank (unused by Mamba-2) and time_step_limit [0, Infinity] as its defaults.
    private static string Mamba2Hf(int hidden, int layers, int heads, string torchDtype) => $$"""
        {
          "architectures": ["Mamba2ForCausalLM"],
          "bos_token_id": 0,
          "chunk_size": 256,
          "conv_kernel": 4,
          "eos_token_id": 0,
          "expand": 2,
          "head_dim": 64,
          "hidden_act": "silu",
          "hidden_size": {{hidden}},
          "initializer_range": 0.1,
          "layer_norm_epsilon": 1e-05,
          "model_type": "mamba2",
          "n_groups": 1,
          "num_heads": {{heads}},
          "num_hidden_layers": {{layers}},
          "pad_token_id": 0,
          "rescale_prenorm_residual": false,
          "residual_in_fp32": true,
          "rms_norm": true,
          "state_size": 128,
          "tie_word_embeddings": true,
          "time_step_floor": 0.0001,
          "time_step_limit": [0.0, Infinity],
          "time_step_max": 0.1,
          "time_step_min": 0.001,
          "time_step_rank": 256,
          "torch_dtype": "{{torchDtype}}",
          "use_bias": false,
          "use_cache": true,
          "use_conv_bias": true,
          "vocab_size": 50288
        }
        """;
}

/// <summary>`mamba4 init`: what to write. Exactly one of <see cref="Shape"/> (a name of <see cref="ModelShapes"/>) and <see cref="ConfigFile"/>.</summary>
public sealed record InitSettings
{
    public string? Shape { get; init; }
    /// <summary>A config.json of one's own (any Mamba, Mamba-2 or Falcon-Mamba configuration this code reads).</summary>
    public string? ConfigFile { get; init; }
    public required string Out { get; init; }
    /// <summary>F32 or BF16 (every tensor in that type, as HF checkpoints), or I8 (<see cref="WeightQuantization"/>'s layout).</summary>
    public DType DType { get; init; } = DType.BF16;
    public int Seed { get; init; }
    /// <summary>Write into a non-empty directory (an interrupted init of the same settings resumes: its complete shards are kept).</summary>
    public bool Force { get; init; }
    /// <summary>The most bytes of tensor data a shard holds (a larger single tensor gets a shard of its own).</summary>
    public long ShardBytes { get; init; } = 2_000_000_000;

    public void Validate()
    {
        if ((Shape is null) == (ConfigFile is null)) throw new ArgumentException("give exactly one of --shape and --config");
        if (Shape is not null && !ModelShapes.Names.Contains(Shape))
            throw new ArgumentException($"--shape must be one of {string.Join(", ", ModelShapes.Names)}, got '{Shape}'");
        if (DType is not (DType.F32 or DType.BF16 or DType.I8)) throw new ArgumentException($"--dtype must be f32, bf16 or int8, got {DType}");
        if (ShardBytes < 1) throw new ArgumentException($"--shard-bytes must be positive, got {ShardBytes}");
        if (string.IsNullOrWhiteSpace(Out)) throw new ArgumentException("--out must name a directory");
        if (File.Exists(Out)) throw new IOException($"--out {Out} is a file; expected a directory");
        if (!Force && Directory.Exists(Out) && Directory.EnumerateFileSystemEntries(Out).Any())
            throw new IOException($"--out {Out} is not empty; --force writes into it (an interrupted init with the same settings resumes)");
    }
}

public sealed record InitResult(string Out, string ModelType, long Parameters, int Shards, int ShardsKept, long Bytes)
{
    public string Summary => $"{Out}: {ModelType}, {Parameters:N0} parameters, {Shards} shards ({ShardsKept} kept from an earlier run), {Bytes:N0} bytes";
}

/// <summary>
/// Writes a random-weight Hugging Face model directory: config.json, model-0000i-of-0000n.safetensors and
/// model.safetensors.index.json. Each tensor is drawn as <see cref="MambaLM"/>'s constructor draws it (the same
/// distribution, not the same numbers: a seeded generator per tensor), a block of rows at a time, so memory stays at
/// one block whatever the model's size. Each shard is written atomically (temp + rename) with the settings in its
/// metadata; the index is written last, so a directory with an index is complete, and rerunning an interrupted init
/// (--force) keeps the shards already written and writes the rest.
/// </summary>
public static class RandomModel
{
    public const string IndexFile = "model.safetensors.index.json";
    private const string MetadataKey = "mamba4_init";
    private const int BlockElements = 1 << 20;

    public static InitResult Write(InitSettings settings, TextWriter log)
    {
        settings.Validate();
        if (settings.Force) RefuseForeignWeights(settings.Out);
        string torchDtype = settings.DType switch { DType.F32 => "float32", DType.BF16 => "bfloat16", _ => "int8" };
        string configText = settings.Shape is { } shape ? ModelShapes.Config(shape, torchDtype) : ReadConfig(settings.ConfigFile!);
        var config = MambaConfig.FromJson(configText, settings.Shape ?? settings.ConfigFile!);
        if (settings.DType == DType.I8) configText = WithQuantization(configText);
        var shapes = MambaLM.Shapes(config);
        var entries = Entries(shapes, settings.DType);
        var shards = Plan(entries, settings.ShardBytes);
        string stamp = $"{settings.Shape ?? Path.GetFileName(settings.ConfigFile)} {settings.DType} seed={settings.Seed} shard-bytes={settings.ShardBytes} {Fnv(configText):x16}";

        Directory.CreateDirectory(settings.Out);
        AtomicFile.RemoveStale(settings.Out, depth: 0);
        File.Delete(Path.Combine(settings.Out, IndexFile));   // the directory is incomplete until the index is back
        AtomicFile.WriteAllText(Path.Combine(settings.Out, "config.json"), configText);
        var inits = shapes.ToDictionary(p => p.Name, p => InitOf(p.Name, p.Shape, config));
        var weightMap = new JsonObject();
        int kept = 0;
        long bytes = 0;
        for (int s = 0; s < shards.Count; s++)
        {
            var file = $"model-{s + 1:00000}-of-{shards.Count:00000}.safetensors";
            var path = Path.Combine(settings.Out, file);
            var shardEntries = shards[s];
            foreach (var e in shardEntries) weightMap[e.Name] = file;
            bytes += shardEntries.Sum(e => e.ByteLength);
            if (IsComplete(path, stamp, shardEntries)) { kept++; continue; }
            log.WriteLine($"writing {file} ({shardEntries.Count} tensors, {shardEntries.Sum(e => e.ByteLength) / 1e9:F2} GB)");
            var scales = new Dictionary<string, float[]>();   // an I8 weight's row scales, written as the entry after it
            Safetensors.SaveStreaming(path, shardEntries, (i, stream) =>
            {
                var e = shardEntries[i];
                if (scales.Remove(e.Name, out var rowScales)) stream.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(rowScales.AsSpan()));
                else if (e.DType == DType.I8) scales[e.Name + WeightQuantization.ScaleSuffix] = WriteQuantized(stream, e, inits[e.Name], config, TensorSeed(settings.Seed, e.Name));
                else WriteTensor(stream, e, inits[e.Name], config, TensorSeed(settings.Seed, e.Name));
            }, new Dictionary<string, string> { ["format"] = "pt", [MetadataKey] = stamp });
        }
        var index = new JsonObject { ["metadata"] = new JsonObject { ["total_size"] = bytes }, ["weight_map"] = weightMap };
        AtomicFile.WriteAllText(Path.Combine(settings.Out, IndexFile), index.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        var result = new InitResult(settings.Out, config.ModelType, shapes.Elements, shards.Count, kept, bytes);
        log.WriteLine(result.Summary);
        return result;
    }

    private static string ReadConfig(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"--config {path} not found", path);
        var text = File.ReadAllText(path);
        MambaConfig.FromJson(text, path);   // one-line errors naming the file and the field
        return text;
    }

    /// <summary>config.json with WeightQuantization's quantization_config added (before the closing brace: the rest stays as written).</summary>
    private static string WithQuantization(string configText)
    {
        int end = configText.LastIndexOf('}');
        var entry = WeightQuantization.ConfigEntry().ToJsonString();
        return configText[..end].TrimEnd() + $",\n  \"quantization_config\": {entry}\n}}\n";
    }

    /// <summary>The tensors in the files: every parameter in <paramref name="dtype"/>; for I8, the Linear/Embedding matrices as I8 with their F32 row scale after each, the rest F32.</summary>
    private static List<SafetensorsEntry> Entries(ParameterShapes shapes, DType dtype)
    {
        var list = new List<SafetensorsEntry>();
        foreach (var (name, shape) in shapes)
        {
            if (dtype != DType.I8) { list.Add(new(name, dtype, shape)); continue; }
            bool matrix = shape.Rank == 2 && name.EndsWith(".weight", StringComparison.Ordinal);
            list.Add(new(name, matrix ? DType.I8 : DType.F32, shape));
            if (matrix) list.Add(new(name + WeightQuantization.ScaleSuffix, DType.F32, new Shape(shape[0])));
        }
        return list;
    }

    /// <summary>Consecutive entries grouped into shards of at most <paramref name="maxBytes"/> (an I8 weight stays with its scale).</summary>
    private static List<List<SafetensorsEntry>> Plan(List<SafetensorsEntry> entries, long maxBytes)
    {
        var shards = new List<List<SafetensorsEntry>> { new() };
        long size = 0;
        for (int i = 0; i < entries.Count; i++)
        {
            bool scaleFollows = i + 1 < entries.Count && entries[i + 1].Name == entries[i].Name + WeightQuantization.ScaleSuffix;
            long need = entries[i].ByteLength + (scaleFollows ? entries[i + 1].ByteLength : 0);
            if (size > 0 && size + need > maxBytes) { shards.Add(new()); size = 0; }
            shards[^1].Add(entries[i]);
            if (scaleFollows) shards[^1].Add(entries[++i]);
            size += need;
        }
        return shards;
    }

    /// <summary>
    /// --force resumes an init: a weight file that opens and lacks init's metadata is someone's checkpoint, which the
    /// shards, config.json and the index would overwrite (an unreadable one is a broken shard, rewritten).
    /// </summary>
    private static void RefuseForeignWeights(string dir)
    {
        if (!Directory.Exists(dir)) return;
        foreach (var path in Directory.EnumerateFiles(dir, "*.safetensors"))
        {
            bool ours;
            try
            {
                using var f = SafetensorsFile.Open(path);
                ours = f.Metadata.ContainsKey(MetadataKey);
            }
            catch (Exception e) when (e is IOException or InvalidDataException or FormatException or SafetensorsFormatException) { continue; }
            if (!ours)
                throw new IOException($"--out {dir}: {Path.GetFileName(path)} is a checkpoint mamba4 init did not write; --force only resumes an init (choose another directory)");
        }
    }

    /// <summary>A shard an earlier run finished: its full size, these tensors, and the same settings in its metadata.</summary>
    private static bool IsComplete(string path, string stamp, List<SafetensorsEntry> entries)
    {
        if (!File.Exists(path)) return false;
        try
        {
            using var f = SafetensorsFile.Open(path);
            return f.Metadata.TryGetValue(MetadataKey, out var s) && s == stamp && f.Names.SequenceEqual(entries.Select(e => e.Name))
                && f.FileLength == f.DataOffset + entries.Sum(e => e.ByteLength);
        }
        catch (Exception e) when (e is IOException or InvalidDataException or FormatException or SafetensorsFormatException) { return false; }
    }

    /// <summary>A stable seed per (seed, tensor): FNV-1a of the name mixed with the seed.</summary>
    private static ulong TensorSeed(int seed, string name) => Fnv(name) ^ ((ulong)(uint)seed * 0x9E3779B97F4A7C15UL);

    private static ulong Fnv(string text)
    {
        ulong h = 14695981039346656037UL;
        foreach (char c in text) h = (h ^ c) * 1099511628211UL;
        return h;
    }

    private enum InitKind { Normal, Uniform, Constant, InverseSoftplusDt, LogStateIndex, LogUniformA }

    /// <summary>How one tensor is drawn: <see cref="InitKind"/> with its scale.</summary>
    private readonly record struct TensorInit(InitKind Kind, double Scale, int Columns);

    /// <summary>
    /// What MambaLM's constructor does for the parameter <paramref name="name"/> (see MambaLM, MambaMixer, Mamba2Mixer, Linear,
    /// CausalConv1d, Embedding): embeddings and lm_head N(0, initializer_range); Linear weights U(±1/√fan_in), out_proj
    /// also × 1/√n_layer with rescale_prenorm_residual; Linear biases 0 (dt_proj's: softplus⁻¹ of a log-uniform Δ); conv
    /// U(±1/√d_conv); dt_proj weight U(±dt_scale/√dt_rank); A_log log(s + 1) (Mamba-1) or log U[1, 16] (Mamba-2); D and norms 1.
    /// </summary>
    private static TensorInit InitOf(string name, Shape shape, MambaConfig c)
    {
        var parts = name.Split('.');
        string leaf = parts[^1] is "weight" or "bias" && parts.Length >= 2 ? parts[^2] + "." + parts[^1] : parts[^1];
        double fanIn = shape.Rank == 2 ? shape[1] : 1;
        return leaf switch
        {
            "embeddings.weight" or "position_embeddings.weight" or "lm_head.weight" => new(InitKind.Normal, c.InitializerRange, 0),
            "norm.weight" or "norm_f.weight" or "D" => new(InitKind.Constant, 1, 0),
            "in_proj.weight" or "x_proj.weight" => new(InitKind.Uniform, 1 / Math.Sqrt(fanIn), 0),
            "out_proj.weight" => new(InitKind.Uniform, 1 / Math.Sqrt(fanIn) / (c.RescalePrenormResidual ? Math.Sqrt(c.NLayer) : 1), 0),
            "in_proj.bias" or "out_proj.bias" => new(InitKind.Constant, 0, 0),
            "conv1d.weight" or "conv1d.bias" => new(InitKind.Uniform, 1 / Math.Sqrt(c.DConv), 0),
            "dt_proj.weight" => new(c.DtInit == "constant" ? InitKind.Constant : InitKind.Uniform, Math.Pow(c.DtRank, -0.5) * c.DtScale, 0),
            "dt_proj.bias" or "dt_bias" => new(InitKind.InverseSoftplusDt, 0, 0),
            "A_log" => c.Mixer == MixerKind.Mamba2 ? new(InitKind.LogUniformA, 0, 0) : new(InitKind.LogStateIndex, 0, shape[shape.Rank - 1]),
            "B" or "C" => new(InitKind.Normal, Math.Pow(c.DState, -0.5), 0),
            _ => throw new NotSupportedException($"init: no initialisation known for tensor '{name}'"),
        };
    }

    /// <summary>Draws the tensor a block at a time (<see cref="BlockElements"/> values) and writes it as <paramref name="entry"/>'s type.</summary>
    private static unsafe void WriteTensor(Stream stream, SafetensorsEntry entry, TensorInit init, MambaConfig config, ulong seed)
    {
        var rng = new SplitMix(seed);
        long total = entry.Shape.NumElements;
        int size = entry.DType.ElementSize();
        var values = new float[(int)Math.Min(BlockElements, Math.Max(1, total))];
        var bytes = new byte[values.Length * size];
        for (long start = 0; start < total; start += values.Length)
        {
            int n = (int)Math.Min(values.Length, total - start);
            Fill(values.AsSpan(0, n), start, init, config, ref rng);
            fixed (float* src = values)
            fixed (byte* dst = bytes)
                DTypeConvert.Convert(src, DType.F32, dst, entry.DType, n);
            stream.Write(bytes, 0, n * size);
        }
    }

    /// <summary>
    /// An int8 matrix [rows, cols]: F32 rows drawn a block at a time and quantized per row by <see cref="WeightQuantization.Quantize"/>;
    /// returns the row scales, written as the next entry.
    /// </summary>
    private static float[] WriteQuantized(Stream stream, SafetensorsEntry entry, TensorInit init, MambaConfig config, ulong seed)
    {
        var rng = new SplitMix(seed);
        int rows = entry.Shape[0], cols = entry.Shape[1];
        int blockRows = Math.Max(1, BlockElements / cols);
        var scales = new float[rows];
        var values = new float[(long)Math.Min(blockRows, rows) * cols];
        for (int r = 0; r < rows; r += blockRows)
        {
            int n = Math.Min(blockRows, rows - r);
            Fill(values.AsSpan(0, n * cols), (long)r * cols, init, config, ref rng);
            using var block = Tensor.From((ReadOnlySpan<float>)values.AsSpan(0, n * cols), n, cols);
            var (q, s) = WeightQuantization.Quantize(block, entry.Name);
            using (q)
            using (s)
            {
                stream.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(q.AsSpan<sbyte>()));
                s.AsSpan<float>().CopyTo(scales.AsSpan(r, n));
            }
        }
        return scales;
    }

    private static void Fill(Span<float> values, long start, TensorInit init, MambaConfig c, ref SplitMix rng)
    {
        switch (init.Kind)
        {
            case InitKind.Constant: values.Fill((float)init.Scale); break;
            case InitKind.Uniform:
                for (int i = 0; i < values.Length; i++) values[i] = (float)((rng.NextDouble() * 2 - 1) * init.Scale);
                break;
            case InitKind.Normal:   // Box–Muller, as Init.Normal
                for (int i = 0; i < values.Length; i++)
                {
                    double u1 = 1.0 - rng.NextDouble(), u2 = rng.NextDouble();
                    values[i] = (float)(init.Scale * Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
                }
                break;
            case InitKind.LogStateIndex:   // S4D-real: A_log[c, s] = log(s + 1)
                for (int i = 0; i < values.Length; i++) values[i] = MathF.Log((start + i) % init.Columns + 1);
                break;
            case InitKind.LogUniformA:   // Mamba-2: A ~ U[1, 16] per head
                for (int i = 0; i < values.Length; i++) values[i] = (float)Math.Log(1 + 15 * rng.NextDouble());
                break;
            case InitKind.InverseSoftplusDt:
                // dt log-uniform in [time_step_min, time_step_max], floored at time_step_floor; bias = dt + log(1 − e^{−dt}).
                double lo = Math.Log(c.DtMin), hi = Math.Log(c.DtMax);
                for (int i = 0; i < values.Length; i++)
                {
                    double dt = Math.Max(Math.Exp(lo + rng.NextDouble() * (hi - lo)), c.DtInitFloor);
                    values[i] = (float)(dt + Math.Log(1 - Math.Exp(-dt)));
                }
                break;
        }
    }

    /// <summary>SplitMix64: a small, fast, seedable generator (one per tensor).</summary>
    private struct SplitMix(ulong state)
    {
        private ulong _state = state;

        public double NextDouble()
        {
            ulong z = _state += 0x9E3779B97F4A7C15UL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return ((z ^ (z >> 31)) >> 11) * (1.0 / (1UL << 53));
        }
    }
}
