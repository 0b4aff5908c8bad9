using System.Text.Json.Nodes;
using Mamba4.Autograd;
using Mamba4.IO;
using Mamba4.Models;
using Mamba4.Tasks.LanguageModeling;
using Mamba4.Tensors;

namespace Mamba4.Tests;

/// <summary>
/// `mamba4 init`: random-weight model directories (tiny custom configs round-trip through the loader and decode finite
/// logits; the weights follow the constructor's init; the index and the shards agree), the real shapes' parameter
/// counts against the model cards, resuming, refusals, and the memory check that refuses a model before allocating it.
/// </summary>
public class RandomModelTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mamba4-init-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private const string TinyMamba = """
        {"model_type": "mamba", "hidden_size": 32, "num_hidden_layers": 3, "state_size": 4, "expand": 2, "time_step_rank": 4,
         "vocab_size": 97, "conv_kernel": 4, "initializer_range": 0.1, "rescale_prenorm_residual": true}
        """;
    private const string TinyMamba2 = """
        {"model_type": "mamba2", "hidden_size": 32, "num_hidden_layers": 3, "state_size": 8, "expand": 2, "head_dim": 16,
         "num_heads": 4, "n_groups": 2, "chunk_size": 8, "vocab_size": 97, "tie_word_embeddings": false, "time_step_limit": [0.0, Infinity]}
        """;
    private const string TinyFalcon = """
        {"model_type": "falcon_mamba", "hidden_size": 32, "num_hidden_layers": 3, "state_size": 4, "intermediate_size": 64, "expand": 16,
         "time_step_rank": 4, "vocab_size": 97, "tie_word_embeddings": false}
        """;

    private string Init(string config, DType dtype, long shardBytes = 20_000, string name = "model", int seed = 3)
    {
        var configFile = Path.Combine(_dir, name + ".config.json");
        File.WriteAllText(configFile, config);
        var output = Path.Combine(_dir, name);
        RandomModel.Write(new InitSettings { ConfigFile = configFile, Out = output, DType = dtype, Seed = seed, ShardBytes = shardBytes }, TextWriter.Null);
        return output;
    }

    [Theory]
    [InlineData(TinyMamba, DType.F32)]
    [InlineData(TinyMamba, DType.BF16)]
    [InlineData(TinyMamba, DType.I8)]
    [InlineData(TinyMamba2, DType.BF16)]
    [InlineData(TinyFalcon, DType.F32)]
    [InlineData(TinyFalcon, DType.I8)]
    public void TinyCustomShapeLoadsAndDecodesFiniteLogits(string config, DType dtype)
    {
        var dir = Init(config, dtype);
        Assert.True(ModelFiles.WeightFiles(dir).Count > 1);   // 20 kB shards: several
        using var lm = (MambaLM)LanguageModelFiles.Load(dir);
        Assert.Equal(dtype, lm.Backbone.Layers[0].Mixer.InProj.Weight.DType);   // the checkpoint's own type is kept
        using var _ = GradMode.NoGrad();
        using var logits = lm.Forward(Tensor.From(new long[] { 1, 5, 9, 2, 7, 3, 3, 60, 11, 4, 8 }, 1, 11));
        Assert.Equal(new Shape(1, 11, 97), logits.Shape);
        Assert.All(logits.ToFloatArray(), v => Assert.True(float.IsFinite(v)));
        using var state = lm.NewState(1);
        Assert.All(lm.Step(Tensor.From(new long[] { 42 }, 1), state).ToFloatArray(), v => Assert.True(float.IsFinite(v)));
    }

    /// <summary>The values follow MambaLM's constructor: uniform bounds 1/√fan_in (out_proj / √n_layer), N(0, 0.1), A_log = log(s + 1), D = 1, softplus(dt_bias) in [dt_min, dt_max].</summary>
    [Fact]
    public void WeightsFollowTheConstructorsInitialisation()
    {
        var dir = Init(TinyMamba, DType.F32, shardBytes: 1L << 30);
        using var f = SafetensorsFile.Open(ModelFiles.WeightFiles(dir).Single());
        float[] Values(string name) => f.Get("backbone.layers.1.mixer." + name).ToFloatArray();
        void Uniform(float[] v, double bound)
        {
            Assert.All(v, x => Assert.InRange(Math.Abs(x), 0, bound));
            double var = v.Average(x => (double)x * x);
            Assert.InRange(var, 0.8 * bound * bound / 3, 1.2 * bound * bound / 3);   // U(±b): variance b²/3
        }
        Uniform(Values("in_proj.weight"), 1 / Math.Sqrt(32));
        Uniform(Values("x_proj.weight"), 1 / Math.Sqrt(64));
        Uniform(Values("out_proj.weight"), 1 / Math.Sqrt(64) / Math.Sqrt(3));
        Uniform(Values("dt_proj.weight"), 1 / Math.Sqrt(4));
        var emb = f.Get("backbone.embeddings.weight").ToFloatArray();
        Assert.InRange(Math.Sqrt(emb.Average(x => (double)x * x)), 0.09, 0.11);
        var aLog = Values("A_log");
        for (int i = 0; i < aLog.Length; i++) Assert.Equal(Math.Log(i % 4 + 1), aLog[i], 1e-6);
        Assert.All(Values("D"), x => Assert.Equal(1f, x));
        Assert.All(f.Get("backbone.layers.2.norm.weight").ToFloatArray(), x => Assert.Equal(1f, x));
        Assert.All(Values("dt_proj.bias"), b => Assert.InRange(Math.Log(1 + Math.Exp(b)), 0.001 * 0.999, 0.1 * 1.001));
    }

    [Fact]
    public void IndexListsEveryTensorInTheShardThatHoldsIt()
    {
        var dir = Init(TinyMamba2, DType.I8);
        var index = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, RandomModel.IndexFile)))!;
        var map = index["weight_map"]!.AsObject();
        var config = MambaConfig.FromJsonFile(Path.Combine(dir, "config.json"));
        var expected = MambaLM.Shapes(config).Select(p => p.Name).ToList();
        expected.AddRange(MambaLM.Shapes(config).Where(p => p.Shape.Rank == 2 && p.Name.EndsWith(".weight")).Select(p => p.Name + "_scale"));
        Assert.Equal(expected.Order(), map.Select(kv => kv.Key).Order());
        long total = 0;
        foreach (var file in map.Select(kv => (string)kv.Value!).Distinct())
        {
            using var shard = SafetensorsFile.Open(Path.Combine(dir, file));
            Assert.Equal(map.Where(kv => (string)kv.Value! == file).Select(kv => kv.Key).Order(), shard.Names.Order());
            total += shard.FileLength - shard.DataOffset;
        }
        Assert.Equal(total, (long)index["metadata"]!["total_size"]!);
        Assert.Equal(map.Select(kv => (string)kv.Value!).Distinct().Count(), Directory.GetFiles(dir, "model-*.safetensors").Length);
    }

    /// <summary>Parameter counts of the real shapes against the model cards (Hugging Face's safetensors counts, 3 significant figures).</summary>
    [Theory]
    [InlineData("mamba-130m", 1.29e8, 0.005)]
    [InlineData("mamba-1.4b", 1.37e9, 0.005)]
    [InlineData("mamba-2.8b", 2.77e9, 0.005)]
    [InlineData("mamba2-2.7b", 2.70e9, 0.01)]
    [InlineData("falcon-mamba-7b", 7.27e9, 0.005)]
    public void RealShapesHaveTheModelCardsParameterCounts(string shape, double parameters, double tolerance)
    {
        var config = MambaConfig.FromJson(ModelShapes.Config(shape, "bfloat16"), shape);
        Assert.InRange(MambaLM.Shapes(config).Elements, parameters * (1 - tolerance), parameters * (1 + tolerance));
    }

    /// <summary>The Mamba-1 shapes' parameter counts from the block's formula, counted here (independently of ParameterShapes).</summary>
    [Theory]
    [InlineData("mamba-130m", 768, 24, 50280, true)]
    [InlineData("mamba-1.4b", 2048, 48, 50280, true)]
    [InlineData("mamba-2.8b", 2560, 64, 50280, true)]
    [InlineData("falcon-mamba-7b", 4096, 64, 65024, false)]
    public void Mamba1ShapesHaveTheBlockFormulasCount(string shape, int d, int layers, int vocab, bool tied)
    {
        var config = MambaConfig.FromJson(ModelShapes.Config(shape, "bfloat16"), shape);
        long e = 2L * d, n = 16, r = shape == "falcon-mamba-7b" ? 256 : (d + 15) / 16;
        // in_proj, conv1d weight and bias, x_proj, dt_proj weight and bias, A_log, D, out_proj, the block's norm
        long block = d * 2 * e + e * 4 + e + e * (r + 2 * n) + r * e + e + e * n + e + e * d + d;
        Assert.Equal(layers * block + vocab * (long)d * (tied ? 1 : 2) + d, MambaLM.Shapes(config).Elements);
    }

    [Fact]
    public void AnInterruptedInitResumesWithTheSameBytes()
    {
        var dir = Init(TinyMamba, DType.BF16, name: "resume");
        var shards = Directory.GetFiles(dir, "model-*.safetensors").Order().ToArray();
        var original = File.ReadAllBytes(shards[1]);
        File.Delete(shards[1]);
        File.Delete(Path.Combine(dir, RandomModel.IndexFile));
        File.WriteAllText(Path.Combine(dir, $".{Path.GetFileName(shards[1])}.{Guid.NewGuid():N}.tmp"), "half a shard");
        var configFile = Path.Combine(_dir, "resume.config.json");
        var result = RandomModel.Write(new InitSettings { ConfigFile = configFile, Out = dir, DType = DType.BF16, Seed = 3, ShardBytes = 20_000, Force = true }, TextWriter.Null);
        Assert.Equal(shards.Length - 1, result.ShardsKept);
        Assert.Equal(original, File.ReadAllBytes(shards[1]));
        Assert.True(File.Exists(Path.Combine(dir, RandomModel.IndexFile)));
        Assert.Empty(Directory.GetFiles(dir, "*.tmp", new EnumerationOptions { AttributesToSkip = 0 }));
    }

    /// <summary>BF16 weights are checked for NaN/±Inf in place (no F32 copy): the first bad value's index and kind, past the vector blocks.</summary>
    [Theory]
    [InlineData((ushort)0x7F80, 1234, "+Inf")]
    [InlineData((ushort)0xFF80, 0, "-Inf")]
    [InlineData((ushort)0x7FC1, 2047, "NaN")]
    public void NonFiniteBf16WeightsAreRefusedNamingTheIndex(ushort bits, int index, string kind)
    {
        var dir = Init(TinyMamba, DType.BF16, shardBytes: 1L << 30, name: "nonfinite");
        var shard = ModelFiles.WeightFiles(dir).Single();
        const string name = "backbone.layers.2.mixer.in_proj.weight";   // [128, 32]: 4,096 values
        long offset;
        using (var f = SafetensorsFile.Open(shard)) offset = f.Info(name).FileOffset;
        using (var fs = new FileStream(shard, FileMode.Open, FileAccess.Write))
        {
            fs.Position = offset + 2L * index;
            fs.Write([(byte)bits, (byte)(bits >> 8)]);
        }
        var e = Assert.Throws<InvalidDataException>(() => LanguageModelFiles.Load(dir));
        Assert.Contains($"tensor '{name}' holds {kind} at index {index}", e.Message);
    }

    [Fact]
    public void ANonEmptyDirectoryIsRefusedWithoutForce()
    {
        var output = Path.Combine(_dir, "taken");
        Directory.CreateDirectory(output);
        File.WriteAllText(Path.Combine(output, "notes.txt"), "mine");
        var e = Assert.Throws<IOException>(() => RandomModel.Write(new InitSettings { Shape = "mamba-130m", Out = output }, TextWriter.Null));
        Assert.Contains("--force", e.Message);
        Assert.Equal(["notes.txt"], Directory.GetFileSystemEntries(output).Select(Path.GetFileName));
    }

    [Fact]
    public void ForceRefusesADirectoryHoldingACheckpointInitDidNotWrite()
    {
        var output = Path.Combine(_dir, "someones");
        Directory.CreateDirectory(output);
        File.WriteAllText(Path.Combine(output, "config.json"), "{\"model_type\": \"mamba\"}");
        using (var t = Tensor.Ones(new Shape(4))) Safetensors.Save(Path.Combine(output, "model.safetensors"), new[] { ("w", t) });
        var configFile = Path.Combine(_dir, "tiny.config.json");
        File.WriteAllText(configFile, TinyMamba);
        var before = Directory.GetFiles(output).Order().Select(f => (Path.GetFileName(f), File.ReadAllText(f))).ToArray();
        var e = Assert.Throws<IOException>(() => RandomModel.Write(
            new InitSettings { ConfigFile = configFile, Out = output, DType = DType.BF16, ShardBytes = 20_000, Force = true }, TextWriter.Null));
        Assert.Contains("model.safetensors is a checkpoint mamba4 init did not write", e.Message);
        Assert.Equal(before, Directory.GetFiles(output).Order().Select(f => (Path.GetFileName(f), File.ReadAllText(f))).ToArray());
    }

    [Theory]
    [InlineData("unknown shape", "--shape", "mamba-9b", "--out", "{0}")]
    [InlineData("exactly one of --shape and --config", "--out", "{0}")]
    [InlineData("exactly one of --shape and --config", "--shape", "mamba-130m", "--config", "x.json", "--out", "{0}")]
    [InlineData("--dtype f16: expected f32, bf16 or int8", "--shape", "mamba-130m", "--dtype", "f16", "--out", "{0}")]
    [InlineData("--shard-bytes must be positive", "--shape", "mamba-130m", "--shard-bytes", "0", "--out", "{0}")]
    [InlineData("not found", "--config", "/nonexistent/config.json", "--out", "{0}")]
    public void BadArgumentsAreOneLineErrors(string expected, params string[] args)
    {
        var output = Path.Combine(_dir, "bad");
        var (code, _, stderr) = CliTests.Run(["init", .. args.Select(a => string.Format(a, output))]);
        Assert.Equal(1, code);
        var line = Assert.Single(stderr.Trim().Split('\n'));
        Assert.StartsWith("error: ", line);
        Assert.Contains(expected == "unknown shape" ? "--shape must be one of" : expected, line);
        Assert.False(Directory.Exists(output) && Directory.EnumerateFiles(output).Any());
    }

    [Fact]
    public void TheCommandWritesAModelThatGenerates()
    {
        var configFile = Path.Combine(_dir, "cli.config.json");
        File.WriteAllText(configFile, TinyFalcon);
        var output = Path.Combine(_dir, "cli");
        var (code, _, stderr) = CliTests.Run("init", "--config", configFile, "--dtype", "int8", "--out", output, "--seed", "5");
        Assert.True(code == 0, stderr);
        Assert.Contains("falcon_mamba", stderr);
        var (genCode, stdout, genErr) = CliTests.Run("generate", "--model", output, "--prompt-ids", "1,2,3", "--max-new-tokens", "4", "--greedy");
        Assert.True(genCode == 0, genErr);
        Assert.Equal(7, stdout.Trim().Split('\n')[^1].Split(',').Length);
    }

    /// <summary>
    /// A model that would not fit is refused with the estimate before anything is allocated: the tiny model against a
    /// 1 MiB limit, and falcon-mamba-7b's real shape against a 24 GiB machine — refused as F32 (29 GB of weights), let
    /// through as BF16 (the Linear/Embedding weights at 2 bytes).
    /// </summary>
    [Fact]
    public void AModelThatDoesNotFitIsRefusedWithTheEstimate()
    {
        var dir = Init(TinyMamba, DType.F32, name: "fit");
        var e = Assert.Throws<InsufficientMemoryException>(() => LanguageModelFiles.Load(dir, new ModelLoadOptions { HostMemoryLimit = 1 << 20 }));
        Assert.Contains("the model needs about", e.Message);
        Assert.Contains("more than the 1 MiB of memory available", e.Message);

        var falcon = MambaLM.Shapes(MambaConfig.FromJson(ModelShapes.Config("falcon-mamba-7b", "bfloat16")));
        var machine = new ModelLoadOptions { HostMemoryLimit = 24L << 30 };
        var f32 = Assert.Throws<InsufficientMemoryException>(() => ModelFiles.CheckMemory(falcon, Device.Cpu, machine, "falcon-mamba-7b"));
        Assert.Contains("as F32", f32.Message);
        ModelFiles.CheckMemory(falcon, Device.Cpu, machine, "falcon-mamba-7b", (name, shape) => shape.Rank == 2 && name.EndsWith(".weight") ? 2 : 4);
    }
}

/// <summary>Init.SkipValues: the initialisers allocate without drawing (the generator is not advanced), and the scope nests.</summary>
public class InitSkipValuesTests
{
    [Fact]
    public void InitialisersDrawNothingWhileSkipping()
    {
        var skipped = new Random(7);
        using (Nn.Init.SkipValues())
        {
            using (Nn.Init.SkipValues()) { }
            Assert.True(Nn.Init.ValuesSkipped);   // the inner scope restored the outer one
            using var t = Nn.Init.Normal(skipped, new Shape(64, 64), 0, 1);
            using var u = Nn.Init.KaimingUniform(skipped, new Shape(64, 64), 64);
            Assert.Equal(new Shape(64, 64), t.Shape);
        }
        Assert.False(Nn.Init.ValuesSkipped);
        Assert.Equal(new Random(7).NextDouble(), skipped.NextDouble());
        using var drawn = Nn.Init.Uniform(skipped, new Shape(1000), -1, 1);
        Assert.Contains(drawn.ToFloatArray(), v => v != 0);
    }
}
