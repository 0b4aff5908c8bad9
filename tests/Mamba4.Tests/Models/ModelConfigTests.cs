using System.Text.Json.Nodes;
using Mamba4.IO;
using Mamba4.Models;
using Mamba4.Nn;
using Mamba4.Tasks.Recommendation;
using Mamba4.Tensors;

namespace Mamba4.Tests;

/// <summary>
/// config.json is checked before it is trusted: parse errors name the file and field, every size is bounded, the
/// configuration is compared with the weight files' headers and the memory it needs before a model is built, and
/// weights holding NaN/Inf are refused unless allowed.
/// </summary>
public class ModelConfigTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mamba4-config-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>A copy of the HF fixture with its config.json replaced by <paramref name="config"/> (null: kept).</summary>
    private string ModelDir(string? config = null)
    {
        var src = Fixtures.Path_("hf-mamba");
        File.Copy(Path.Combine(src, "model.safetensors"), Path.Combine(_dir, "model.safetensors"), overwrite: true);
        File.WriteAllText(Path.Combine(_dir, "config.json"), config ?? File.ReadAllText(Path.Combine(src, "config.json")));
        return _dir;
    }

    private string Config => Path.Combine(_dir, "config.json");

    /// <summary>The fixture's config.json with one field set (JSON text).</summary>
    private static string FixtureConfigWith(string field, string json)
    {
        var o = JsonNode.Parse(File.ReadAllText(Fixtures.Path_("hf-mamba", "config.json")))!.AsObject();
        o[field] = JsonNode.Parse(json);
        return o.ToJsonString();
    }

    [Theory]
    [InlineData("", "empty file")]
    [InlineData("  \n ", "empty file")]
    [InlineData("{\n  \"hidden_size\": ,\n}", "not valid JSON at line 2, position 18")]
    [InlineData("{\"hidden_size\": 32, \"hidden_size\": 64}", "not valid JSON: Duplicate property 'hidden_size'")]
    [InlineData("[32, 2]", "expected a JSON object { … }, got [32,2]")]
    [InlineData("{\"hidden_size\": \"big\"}", "field 'hidden_size': expected a positive integer ≤ 65536, got \"big\"")]
    [InlineData("{\"hidden_size\": 32.5}", "field 'hidden_size': expected a positive integer ≤ 65536, got 32.5")]
    [InlineData("{\"state_size\": -1}", "field 'state_size': expected a positive integer ≤ 1024, got -1")]
    [InlineData("{\"use_bias\": 1}", "field 'use_bias': expected true or false, got 1")]
    [InlineData("{\"dropout\": 1}", "field 'dropout': expected a probability, 0 ≤ p < 1, got 1")]
    [InlineData("{\"layer_norm_epsilon\": 0}", "field 'layer_norm_epsilon': expected a positive number, got 0")]
    [InlineData("{\"time_step_init_scheme\": \"uniform\"}", "field 'time_step_init_scheme': expected one of \"random\", \"constant\", got \"uniform\"")]
    public void BadConfigFailsWithOneLineNamingTheFileAndField(string json, string expected)
    {
        File.WriteAllText(Config, json);
        var e = Assert.Throws<FormatException>(() => MambaConfig.FromJsonFile(Config));
        Assert.StartsWith($"{Config}: {expected}", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Theory]
    // 64M intermediate size, 10 million layers: the model would have allocated until the machine ran out
    [InlineData("intermediate_size", "67108864", "field 'intermediate_size': expected a positive integer ≤ 262144, got 67108864")]
    [InlineData("num_hidden_layers", "1e7", "field 'num_hidden_layers': expected a positive integer ≤ 1024, got 1e7")]
    [InlineData("num_hidden_layers", "10000000", "field 'num_hidden_layers': expected a positive integer ≤ 1024, got 10000000")]
    [InlineData("vocab_size", "2147483647", "field 'vocab_size': expected a positive integer ≤ 4194304, got 2147483647")]
    [InlineData("max_position_embeddings", "1e9", "field 'max_position_embeddings': expected an integer from 0 to 1048576, got 1e9")]
    [InlineData("expand", "1000", "field 'expand': expected a positive integer ≤ 64, got 1000")]
    public void HugeSizesAreRefusedBeforeAnythingIsAllocated(string field, string value, string expected)
    {
        var dir = ModelDir(FixtureConfigWith(field, value));
        long before = GC.GetAllocatedBytesForCurrentThread();
        var e = Assert.Throws<FormatException>(() => MambaLM.FromPretrained(dir));
        Assert.Equal($"{Config}: {expected}", e.Message);
        Assert.InRange(GC.GetAllocatedBytesForCurrentThread() - before, 0, 50_000_000);
    }

    [Fact]
    public void ExpandTimesWidthIsBoundedToo()
    {
        // Each within its own bound, the product (d_inner = expand · hidden_size) is not.
        var e = Assert.Throws<FormatException>(() => MambaConfig.FromJson("""{"hidden_size": 65536, "expand": 8}""", "c.json"));
        Assert.Equal("c.json: field 'intermediate_size': expected a positive integer ≤ 262144, got 524288", e.Message);
    }

    [Theory]
    [InlineData("sasrec", """{"n_items": 1e9}""", "field 'n_items': expected a positive integer ≤ 4194304, got 1e9")]
    [InlineData("sasrec", """{"n_items": 5, "hidden_size": 64, "n_heads": 3}""", "field 'hidden_size' (64) must be a multiple of field 'n_heads' (3)")]
    [InlineData("sasrec", """{"n_items": 1}""", "field 'n_items': expected at least 2 (the padding item 0 and one item), got 1")]
    [InlineData("gru4rec", """{"n_items": 5, "num_layers": 100000}""", "field 'num_layers': expected a positive integer ≤ 1024, got 100000")]
    [InlineData("mamba4rec", """{"n_items": 5, "d_state": 4096}""", "field 'd_state': expected a positive integer ≤ 1024, got 4096")]
    [InlineData("mamba4rec", """{"n_items": 5, "inner_size": 1e8}""", "field 'inner_size': expected a positive integer ≤ 262144, got 1e8")]
    [InlineData("gpt", """{"n_embd": 1000000, "n_layer": 2, "n_head": 2, "vocab_size": 10, "n_positions": 8}""", "field 'n_embd': expected a positive integer ≤ 65536, got 1000000")]
    [InlineData("gpt", """{"n_embd": 64, "n_head": 2, "vocab_size": 10, "n_positions": 8}""", "field 'n_layer' is missing")]
    [InlineData("forecaster", """{"model": "mamba", "d_model": 1e6}""", "field 'model.d_model': expected a positive integer ≤ 65536, got 1e6")]
    [InlineData("forecaster", """{"model": "mamba", "d_modle": 64}""", "field 'model.d_modle' is not a known setting")]
    [InlineData("forecaster", """{"model": "rnn"}""", "field 'model.model': expected one of \"mamba\", \"linear\", \"transformer\", got \"rnn\"")]
    public void EveryKindOfConfigIsReadThroughTheSameChecks(string kind, string json, string expected)
    {
        var e = Assert.Throws<FormatException>(() =>
        {
            var r = ConfigReader.Parse(kind == "forecaster" ? $$"""{"model": {{json}}}""" : json, "c.json");
            _ = kind switch
            {
                "sasrec" => (object)RecConfigJson.ReadSASRec(r),
                "gru4rec" => RecConfigJson.ReadGRU4Rec(r),
                "mamba4rec" => RecModels.ReadMamba4Rec(r),
                "gpt" => GptConfig.FromConfig(r),
                _ => ForecasterConfig.FromConfig(r.Section("model")),
            };
        });
        Assert.StartsWith($"c.json: {expected}", e.Message);
    }

    public static TheoryData<string> ModelKinds() =>
        ["mamba-lm", "mamba-lm-lti-untied", "mamba2-lm", "gpt", "mamba4rec", "mamba4rec-2", "sasrec", "gru4rec-2", "forecast-mamba", "forecast-mamba-temporal", "forecast-transformer", "forecast-linear"];

    [Theory]
    [MemberData(nameof(ModelKinds))]
    public void ShapesComputedFromTheConfigAreTheModelsParameters(string kind)
    {
        var forecast = new ForecasterConfig { InputLength = 12, Horizon = 5, Variables = 3, DModel = 8, Layers = 2, DState = 4, DFf = 16, Heads = 2 };
        (Module model, ParameterShapes shapes) = kind switch
        {
            "mamba-lm" => Pair(new MambaConfig { DModel = 16, NLayer = 2, DState = 4, VocabSize = 30 }, c => new MambaLM(c), MambaLM.Shapes),
            "mamba-lm-lti-untied" => Pair(new MambaConfig { DModel = 16, NLayer = 1, DState = 4, VocabSize = 30, Selective = false, TieEmbeddings = false, Bias = true, ConvBias = false, MaxPositionEmbeddings = 9 },
                c => new MambaLM(c), MambaLM.Shapes),
            "mamba2-lm" => Pair(new MambaConfig { Mixer = MixerKind.Mamba2, DModel = 16, NLayer = 2, DState = 4, VocabSize = 30, HeadDim = 8, NGroups = 2, Bias = true, TieEmbeddings = false },
                c => new MambaLM(c), MambaLM.Shapes),
            "gpt" => Pair(new GptConfig { DModel = 16, NLayer = 2, NHead = 2, VocabSize = 30, MaxPositions = 12 }, c => new GptLM(c), GptLM.Shapes),
            "mamba4rec" => Pair(new Mamba4RecConfig { NItems = 20, HiddenSize = 8, DState = 4, InnerSize = 32 }, c => new Mamba4Rec(c), Mamba4Rec.Shapes),
            "mamba4rec-2" => Pair(new Mamba4RecConfig { NItems = 20, HiddenSize = 8, NumLayers = 2, DState = 4, InnerSize = 24 }, c => new Mamba4Rec(c), Mamba4Rec.Shapes),
            "sasrec" => Pair(new SASRecConfig { NItems = 20, HiddenSize = 8, NHeads = 2, InnerSize = 24, MaxSeqLength = 7 }, c => new SASRec(c), SASRec.Shapes),
            "gru4rec-2" => Pair(new GRU4RecConfig { NItems = 20, EmbeddingSize = 8, HiddenSize = 12, NumLayers = 2 }, c => new GRU4Rec(c), GRU4Rec.Shapes),
            "forecast-mamba" => Pair(forecast with { Bidirectional = true, TimeFeatures = 2 }, c => Forecaster.Create(c), Forecaster.Shapes),
            "forecast-mamba-temporal" => Pair(forecast with { Embedding = "temporal", TimeFeatures = 2 }, c => Forecaster.Create(c), Forecaster.Shapes),
            "forecast-transformer" => Pair(forecast with { Model = "transformer" }, c => Forecaster.Create(c), Forecaster.Shapes),
            _ => Pair(forecast with { Model = "linear", MovingAverage = 5 }, c => Forecaster.Create(c), Forecaster.Shapes),
        };
        using (model)
        {
            var built = model.NamedParameters().Select(p => $"{p.Name} {p.Tensor.Shape}").Order(StringComparer.Ordinal);
            Assert.Equal(built, shapes.Select(p => $"{p.Name} {p.Shape}").Order(StringComparer.Ordinal));
            Assert.Equal(model.ParameterCount, shapes.Elements);
        }

        static (Module, ParameterShapes) Pair<TConfig>(TConfig c, Func<TConfig, Module> create, Func<TConfig, ParameterShapes> shapes) => (create(c), shapes(c));
    }

    [Fact]
    public void ConfigContradictingTheWeightsIsRefusedBeforeTheModelIsBuilt()
    {
        // Within every bound, but a 1 TB model that does not match the 96 × 32 fixture: the old path built it first.
        var dir = ModelDir(FixtureConfigWith("hidden_size", "65536").Replace("\"vocab_size\":96", "\"vocab_size\":4194304").Replace("\"intermediate_size\":64", "\"intermediate_size\":131072"));
        var e = Assert.Throws<InvalidDataException>(() => MambaLM.FromPretrained(dir));
        Assert.Contains("the weights do not match the model's configuration", e.Message);
        Assert.Contains("backbone.embeddings.weight: expected [4194304, 65536], found [96, 32]", e.Message);

        // The check itself runs before the model is created at all.
        var config = MambaConfig.FromJsonFile(Fixtures.Path_("hf-mamba", "config.json")) with { DState = 16 };
        var files = ModelFiles.WeightFiles(Fixtures.Path_("hf-mamba"));
        var e2 = Assert.Throws<InvalidDataException>(() => ModelFiles.Load<MambaLM>(files, MambaLM.Shapes(config), () => throw new InvalidOperationException("built before the check")));
        Assert.Contains("backbone.layers.0.mixer.A_log: expected [64, 16], found [64, 8]", e2.Message);
    }

    [Fact]
    public void AModelNeedingMoreMemoryThanAvailableIsRefusedWithTheEstimate()
    {
        var dir = ModelDir();
        long parameters, largest;
        using (var model = MambaLM.FromPretrained(dir)) (parameters, largest) = (model.ParameterCount, model.Parameters().Max(p => p.NumElements));
        var e = Assert.Throws<InsufficientMemoryException>(() => MambaLM.FromPretrained(dir, new ModelLoadOptions { HostMemoryLimit = 1_000_000 }));
        Assert.Contains($"the model needs about 64 MiB ({parameters:N0} parameters as F32, plus working memory), more than the 1,000,000 bytes of memory available", e.Message);
        Assert.StartsWith(Path.Combine(dir, "model.safetensors"), e.Message);
        // The estimate: 4 bytes per parameter, one more copy of the largest tensor (the load's conversion buffer), 64 MiB of working room.
        var shapes = MambaLM.Shapes(MambaConfig.FromJsonFile(Config));
        Assert.Equal(4 * (parameters + largest) + (64L << 20), ModelFiles.EstimateBytes(shapes));
        using var fits = MambaLM.FromPretrained(dir, new ModelLoadOptions { HostMemoryLimit = ModelFiles.EstimateBytes(shapes) });
    }

    [Fact]
    public void NonFiniteWeightsAreRefusedUnlessAllowed()
    {
        var dir = ModelDir();
        var weights = SafetensorsFile.LoadAll(Path.Combine(dir, "model.safetensors"));
        weights["backbone.layers.1.mixer.D"].AsSpan<float>()[37] = float.NaN;
        weights["backbone.norm_f.weight"].AsSpan<float>()[3] = float.NegativeInfinity;
        Safetensors.Save(Path.Combine(dir, "model.safetensors"), weights);

        var e = Assert.Throws<InvalidDataException>(() => MambaLM.FromPretrained(dir));
        Assert.Contains("tensor 'backbone.layers.1.mixer.D' holds NaN at index 37", e.Message);
        Assert.Contains("--allow-nonfinite", e.Message);

        var warnings = new List<string>();
        using var model = MambaLM.FromPretrained(dir, new ModelLoadOptions { AllowNonFinite = true, Warn = warnings.Add });
        Assert.True(float.IsNaN(model.Backbone.Layers[1].Mixer.D.ToFloatArray()[37]));
        Assert.Equal(2, warnings.Count);
        Assert.Contains(warnings, w => w.Contains("tensor 'backbone.norm_f.weight' holds -Inf at index 3"));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(5)]
    [InlineData(63)]
    [InlineData(64)]
    [InlineData(1000)]
    [InlineData(1026)]
    public void TheNonFiniteScanFindsTheFirstBadValueAnywhere(int index)
    {
        using var t = Tensor.Zeros(new Shape(1027));
        var span = t.AsSpan<float>();
        span[index] = float.PositiveInfinity;
        if (index + 1 < span.Length) span[^1] = float.NaN;
        Assert.Equal((long)index, ModelFiles.FirstNonFinite(t).Index);
        span[index] = 1e38f;
        Assert.Equal(index + 1 < span.Length ? 1026L : -1L, ModelFiles.FirstNonFinite(t).Index);
    }

    [Fact]
    public void FalconMambaConfigRoundTripsItsRmsEpsilonAndModelType()
    {
        var config = MambaConfig.FromJsonFile(Fixtures.Repo("falcon-mamba", "config.json"));
        Assert.Equal(1e-6f, config.MixerRmsEps);
        Assert.Equal("falcon_mamba", config.ModelType);
        var json = config.ToJson();
        var o = JsonNode.Parse(json)!.AsObject();
        Assert.Equal("falcon_mamba", (string?)o["model_type"]);
        Assert.Equal("FalconMambaForCausalLM", (string?)o["architectures"]![0]);
        var again = MambaConfig.FromJson(json);
        Assert.Equal(config, again);
        Assert.Equal(1e-6f, again.MixerRmsEps);
        Assert.Equal("falcon_mamba", again.ModelType);
        // model_type falcon_mamba without the field takes transformers' default; plain Mamba stays without norms.
        Assert.Equal(1e-6f, MambaConfig.FromJson("{\"model_type\": \"falcon_mamba\"}").MixerRmsEps);
        var plain = MambaConfig.FromJsonFile(Fixtures.Path_("hf-mamba", "config.json"));
        Assert.Null(plain.MixerRmsEps);
        Assert.Equal("mamba", (string?)JsonNode.Parse(plain.ToJson())!["model_type"]);
        Assert.Null(JsonNode.Parse(plain.ToJson())!["mixer_rms_eps"]);
    }

    [Fact]
    public void FalconMambaHasNoExtraParameters()
    {
        var config = MambaConfig.FromJsonFile(Fixtures.Repo("falcon-mamba", "config.json"));
        using var model = new MambaLM(config);
        using var plain = new MambaLM(config with { MixerRmsEps = null });
        Assert.Equal(plain.NamedParameters().Select(p => (p.Name, p.Tensor.Shape)), model.NamedParameters().Select(p => (p.Name, p.Tensor.Shape)));
        Assert.Equal(MambaLM.Shapes(config).Select(s => s.Name).Order(), model.NamedParameters().Select(p => p.Name).Order());
    }
}
