using System.Text.Json.Nodes;
using Mamba4.Autograd;
using Mamba4.Models;
using Mamba4.Nn;
using Mamba4.Tasks.LanguageModeling;
using Mamba4.Tensors;

namespace Mamba4.Tests;

/// <summary>Mamba-2's configuration (HF and mamba_ssm fields, refusals) and its gated RMSNorm.</summary>
public class Mamba2Tests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mamba4-mamba2-").FullName;
    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Write(string json)
    {
        var path = Path.Combine(_dir, "config.json");
        File.WriteAllText(path, json);
        return path;
    }

    /// <summary>The fixture's config.json with fields replaced (null removes the field).</summary>
    private static string FixtureConfigWith(params (string Field, string? Json)[] changes)
    {
        var o = JsonNode.Parse(File.ReadAllText(Fixtures.Repo("mamba2", "config.json")))!.AsObject();
        foreach (var (field, json) in changes)
            if (json is null) o.Remove(field);
            else o[field] = JsonNode.Parse(json);
        return o.ToJsonString();
    }

    [Theory]
    [InlineData("model_type", "\"llama\"", "field 'model_type': expected one of \"mamba\", \"falcon_mamba\", \"mamba2\", got \"llama\"")]
    [InlineData("num_heads", "6", "field 'num_heads': num_heads · head_dim = 6 · 8 must equal expand · hidden_size = 64")]
    [InlineData("head_dim", "16", "field 'num_heads': num_heads · head_dim = 8 · 16 must equal expand · hidden_size = 64")]
    [InlineData("n_groups", "3", "field 'n_groups': the 8 heads must be a multiple of n_groups = 3")]
    [InlineData("rms_norm", "false", "field 'rms_norm': false is not implemented")]
    [InlineData("hidden_act", "\"gelu\"", "field 'hidden_act': expected \"silu\", got \"gelu\"")]
    [InlineData("time_step_limit", "[0.5, 0.1]", "field 'time_step_limit': expected [min, max] with 0 ≤ min ≤ max")]
    [InlineData("time_step_limit", "0.1", "field 'time_step_limit': expected [min, max] with 0 ≤ min ≤ max")]
    // Beyond float: the kernels' float limits would be ∞ and every Δ ∞ (NaN outputs), not the model the file describes.
    [InlineData("time_step_limit", "[1e39, 1e40]", "field 'time_step_limit': need 0 ≤ min ≤ max ≤ 3.4028235E+38 (max may be Infinity)")]
    [InlineData("chunk_size", "0", "field 'chunk_size': expected a positive integer ≤ 1048576, got 0")]
    [InlineData("mixer_rms_eps", "1e-6", "field 'mixer_rms_eps' is Falcon-Mamba's (Mamba-1); a Mamba-2 model has none")]
    [InlineData("intermediate_size", "48", "field 'intermediate_size': a Mamba-2 model's d_inner is expand · hidden_size = 64, got 48")]
    public void AMamba2ConfigThisCodeDoesNotImplementIsAOneLineErrorNamingTheField(string field, string json, string expected)
    {
        var path = Write(FixtureConfigWith((field, json)));
        var e = Assert.Throws<FormatException>(() => MambaConfig.FromJsonFile(path));
        Assert.StartsWith($"{path}: {expected}", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Theory]
    [InlineData("""{"d_model": 32, "n_layer": 2, "vocab_size": 96, "ssm_cfg": {"layer": "Mamba3"}}""", "field 'ssm_cfg.layer': expected one of \"Mamba1\", \"Mamba2\", got \"Mamba3\"")]
    [InlineData("""{"d_model": 32, "n_layer": 2, "vocab_size": 96, "ssm_cfg": {"layer": "Mamba2", "D_has_hdim": true}}""", "field 'ssm_cfg.D_has_hdim': true (D per channel) is not implemented")]
    [InlineData("""{"d_model": 32, "n_layer": 2, "vocab_size": 96, "ssm_cfg": {"layer": "Mamba2", "d_ssm": 32}}""", "field 'ssm_cfg.d_ssm'")]
    [InlineData("""{"d_model": 32, "n_layer": 2, "vocab_size": 96, "ssm_cfg": {"layer": "Mamba2", "rmsnorm": false}}""", "field 'ssm_cfg.rmsnorm': false is not implemented")]
    [InlineData("""{"d_model": 32, "n_layer": 2, "vocab_size": 96, "ssm_cfg": {"layer": "Mamba2", "d_stat": 16}}""", "field 'ssm_cfg.d_stat' is not a known setting")]
    [InlineData("""{"d_model": 32, "n_layer": 2, "vocab_size": 96, "ssm_cfg": {"headdim": 16}}""", "field 'ssm_cfg.layer': Mamba-2 fields (headdim, ngroups, chunk_size) need layer \"Mamba2\"")]
    [InlineData("""{"d_model": 32, "n_layer": 2, "vocab_size": 96, "d_intermediate": 128, "ssm_cfg": {"layer": "Mamba2"}}""", "field 'd_intermediate': an MLP after each mixer is not implemented")]
    [InlineData("""{"d_model": 32, "n_layer": 2, "vocab_size": 96, "attn_layer_idx": [1], "ssm_cfg": {"layer": "Mamba2"}}""", "field 'attn_layer_idx': attention layers are not implemented")]
    [InlineData("""{"d_model": 32, "n_layer": 2, "vocab_size": 96, "rms_norm": false, "ssm_cfg": {}}""", "field 'rms_norm': false is not implemented")]
    [InlineData("""{"model_type": "mamba", "ssm_cfg": {"layer": "Mamba2"}}""", "field 'ssm_cfg.layer': \"Mamba2\" contradicts model_type \"mamba\"")]
    public void AMambaSsmConfigThisCodeDoesNotImplementIsAOneLineErrorNamingTheField(string json, string expected)
    {
        var path = Write(json);
        var e = Assert.Throws<FormatException>(() => MambaConfig.FromJsonFile(path));
        Assert.StartsWith($"{path}: {expected}", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void AnUnknownModelTypeIsRefusedByTheLanguageModelLoaderInsteadOfLoadingAsMamba()
    {
        File.Copy(Fixtures.Repo("mamba2", "model.safetensors"), Path.Combine(_dir, "model.safetensors"));
        var path = Write(FixtureConfigWith(("model_type", "\"mamba3\"")));
        var e = Assert.Throws<FormatException>(() => LanguageModelFiles.Load(_dir));
        Assert.Equal($"{path}: field 'model_type': expected one of \"mamba\", \"falcon_mamba\", \"mamba2\", \"gpt\", got \"mamba3\"", e.Message);
    }

    [Fact]
    public void TransformersDefaultTimeStepLimitWithABareInfinityReadsAsNoClamp()
    {
        // Python's json writes Mamba2Config's default (0.0, inf) as [0.0, Infinity], which is not JSON.
        var json = FixtureConfigWith(("time_step_limit", null)).Replace("\"model_type\"", "\"time_step_limit\": [0.0, Infinity], \"note\": \"Infinity stays a string\", \"model_type\"");
        var c = MambaConfig.FromJsonFile(Write(json));
        Assert.Equal((0.0, double.PositiveInfinity), (c.TimeStepLimitMin, c.TimeStepLimitMax));
        // Elsewhere a bare Infinity is refused as not finite, naming the field.
        var infiniteEps = FixtureConfigWith(("layer_norm_epsilon", null)).Replace("\"model_type\"", "\"layer_norm_epsilon\": Infinity, \"model_type\"");
        var e = Assert.Throws<FormatException>(() => MambaConfig.FromJsonFile(Write(infiniteEps)));
        Assert.Contains("field 'layer_norm_epsilon': expected a positive number, got \"Infinity\"", e.Message);
    }

    [Fact]
    public void TheFixturesConfigReadsAsTransformersMeansItAndRoundTrips()
    {
        var c = MambaConfig.FromJsonFile(Fixtures.Repo("mamba2", "config.json"));
        Assert.Equal((MixerKind.Mamba2, 32, 2, 8, 8, 2, 16, 8), (c.Mixer, c.DModel, c.NLayer, c.Heads, c.HeadDim, c.NGroups, c.DState, c.ChunkSize));
        Assert.Equal((0.005, 2.0, false, 1, false), (c.TimeStepLimitMin, c.TimeStepLimitMax, c.NormBeforeGate, c.NormGroups, c.TieEmbeddings));
        Assert.Equal(64 + 2 * 2 * 16, c.ConvDim);
        AssertRoundTrips(c);
        AssertRoundTrips(c with { TimeStepLimitMin = 0, TimeStepLimitMax = double.PositiveInfinity });
        var lowerOnlyJson = (c with { TimeStepLimitMin = 0.01, TimeStepLimitMax = double.PositiveInfinity }).ToJson();
        // As Python's json writes float("inf"), which transformers reads back as a number (a quoted one is a string).
        Assert.Matches("\"time_step_limit\": \\[\\s*0.01,\\s*Infinity\\s*\\]", lowerOnlyJson);
        var lowerOnly = MambaConfig.FromJson(lowerOnlyJson);
        Assert.Equal((0.01, double.PositiveInfinity), (lowerOnly.TimeStepLimitMin, lowerOnly.TimeStepLimitMax));
    }

    [Fact]
    public void AMambaSsmConfigReadsItsSsmCfgAndNormalisesPerGroup()
    {
        // state-spaces/mamba2-* style: no model_type, the mixer's fields in ssm_cfg, tie_embeddings default true.
        var c = MambaConfig.FromJson("""
            {"d_model": 32, "d_intermediate": 0, "n_layer": 2, "vocab_size": 96, "rms_norm": true, "residual_in_fp32": true,
             "fused_add_norm": true, "pad_vocab_size_multiple": 16, "attn_layer_idx": [], "attn_cfg": {},
             "ssm_cfg": {"layer": "Mamba2", "d_state": 16, "headdim": 8, "ngroups": 2, "chunk_size": 64, "dt_limit": [0.001, 1.0], "norm_before_gate": true}}
            """);
        Assert.Equal((MixerKind.Mamba2, 16, 8, 8, 2, 64), (c.Mixer, c.DState, c.Heads, c.HeadDim, c.NGroups, c.ChunkSize));
        Assert.Equal((0.001, 1.0, true, 2, true), (c.TimeStepLimitMin, c.TimeStepLimitMax, c.NormBeforeGate, c.NormGroups, c.TieEmbeddings));
        AssertRoundTrips(c);
        // mamba_ssm's Mamba2 arguments that choose a code path or an init, not the model, are accepted.
        var paths = MambaConfig.FromJson("""
            {"d_model": 32, "n_layer": 2, "vocab_size": 96,
             "ssm_cfg": {"layer": "Mamba2", "headdim": 8, "use_mem_eff_path": false, "sequence_parallel": true, "conv_init": 0.5}}
            """);
        Assert.Equal((MixerKind.Mamba2, 8), (paths.Mixer, paths.Heads));
        // A Mamba-1 mamba_ssm config keeps its mixer fields in ssm_cfg too (they used to be ignored).
        var m1 = MambaConfig.FromJson("""{"d_model": 32, "n_layer": 2, "vocab_size": 96, "ssm_cfg": {"d_state": 8, "expand": 3}}""");
        Assert.Equal((MixerKind.Mamba1, 8, 96), (m1.Mixer, m1.DState, m1.DInner));
    }

    [Fact]
    public void AShardedMamba2DirectoryLoadsAsTheSingleFileOne()
    {
        using var reference = MambaLM.FromPretrained(Fixtures.Repo("mamba2"));
        File.Copy(Fixtures.Repo("mamba2", "config.json"), Path.Combine(_dir, "config.json"));
        var all = reference.NamedParameters().ToList();
        var map = new JsonObject();
        for (int i = 0; i < 2; i++)
        {
            var file = $"model-0000{i + 1}-of-00002.safetensors";
            var shard = all.Where((_, k) => k % 2 == i).Select(p => (p.Name, p.Tensor)).ToList();
            IO.Safetensors.Save(Path.Combine(_dir, file), shard);
            foreach (var (n, _) in shard) map[n] = file;
        }
        File.WriteAllText(Path.Combine(_dir, "model.safetensors.index.json"), new JsonObject { ["weight_map"] = map }.ToJsonString());
        using var loaded = (MambaLM)LanguageModelFiles.Load(_dir);
        Assert.Equal(MixerKind.Mamba2, loaded.Config.Mixer);
        foreach (var ((name, r), (_, l)) in reference.NamedParameters().Zip(loaded.NamedParameters()))
            Assert.True(r.ToFloatArray().SequenceEqual(l.ToFloatArray()), name);
    }

    [Fact]
    public void AConfigThatContradictsTheMamba2WeightsNamesTheTensorBeforeBuilding()
    {
        // n_groups 1 instead of 2: in_proj and conv1d have fewer channels than the file's.
        File.Copy(Fixtures.Repo("mamba2", "model.safetensors"), Path.Combine(_dir, "model.safetensors"));
        Write(FixtureConfigWith(("n_groups", "1")));
        var e = Assert.Throws<InvalidDataException>(() => MambaLM.FromPretrained(_dir));
        Assert.Contains("backbone.layers.0.mixer.in_proj.weight: expected [168, 32], found [200, 32]", e.Message);
    }

    /// <summary>
    /// Mamba-Codestral-7B's config.json (written by transformers 4.44) says "norm_before_gate": true, which transformers
    /// ignores: its MambaRMSNormGated always gates before the norm (as mamba_ssm's default, which Codestral was trained
    /// with). Honouring it gave another model; the fixture's logits and gradients, made by transformers, must still hold.
    /// </summary>
    [Fact]
    public void AnHfConfigsNormBeforeGateIsIgnoredAsTransformersIgnoresIt()
    {
        foreach (var file in new[] { "model.safetensors", "reference.safetensors" })
            File.Copy(Fixtures.Repo("mamba2", file), Path.Combine(_dir, file));
        Write(FixtureConfigWith(("norm_before_gate", "true")));
        Assert.False(MambaConfig.FromJsonFile(Path.Combine(_dir, "config.json")).NormBeforeGate);
        ModelFixtureTests.CausalLmMatchesFixture(_dir);
    }

    [Fact]
    public void MambaCodestralsConfigReadsAsTransformersBuildsIt()
    {
        // mistralai/Mamba-Codestral-7B-v0.1's config.json as transformers 4.44 wrote it (bare Infinity included).
        var c = MambaConfig.FromJson("""
            {"architectures": ["Mamba2ForCausalLM"], "bos_token_id": 0, "chunk_size": 256, "conv_kernel": 4, "eos_token_id": 0,
             "expand": 2, "head_dim": 64, "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.1,
             "intermediate_size": 8192, "layer_norm_epsilon": 1e-05, "model_type": "mamba2", "n_groups": 8,
             "norm_before_gate": true, "num_heads": 128, "num_hidden_layers": 64, "pad_token_id": 0,
             "rescale_prenorm_residual": false, "residual_in_fp32": true, "rms_norm": true, "state_size": 128,
             "tie_word_embeddings": false, "time_step_floor": 0.0001, "time_step_init_scheme": "random",
             "time_step_limit": [0.0, Infinity], "time_step_max": 0.1, "time_step_min": 0.001, "time_step_rank": 256,
             "time_step_scale": 1.0, "torch_dtype": "bfloat16", "transformers_version": "4.44.0.dev0", "use_bias": false,
             "use_cache": true, "use_conv_bias": true, "vocab_size": 32768}
            """);
        Assert.Equal((MixerKind.Mamba2, 4096, 64, 32768, 128, 64, 8, 128), (c.Mixer, c.DModel, c.NLayer, c.VocabSize, c.Heads, c.HeadDim, c.NGroups, c.DState));
        Assert.Equal((0.0, double.PositiveInfinity, false, 1, false, true, false), (c.TimeStepLimitMin, c.TimeStepLimitMax,
            c.NormBeforeGate, c.NormGroups, c.TieEmbeddings, c.ConvBias, c.Bias));
        Assert.Equal(8192 + 2 * 8 * 128, c.ConvDim);
    }

    [Fact]
    public void AConfigFarLargerThanItsWeightsIsRefusedInOneShortLine()
    {
        // 1,000 layers against the fixture's 2: ~9,000 missing tensors, which once made a 400 KB message.
        File.Copy(Fixtures.Repo("mamba2", "model.safetensors"), Path.Combine(_dir, "model.safetensors"));
        Write(FixtureConfigWith(("num_hidden_layers", "1000")));
        var e = Assert.Throws<InvalidDataException>(() => MambaLM.FromPretrained(_dir));
        Assert.Contains("missing: backbone.layers.2.norm.weight, backbone.layers.2.mixer.in_proj.weight", e.Message);
        Assert.Contains($"… and {998 * 9 - 10} more", e.Message);
        Assert.True(e.Message.Length < 2000, $"{e.Message.Length} characters");
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void AHeadWidthGivingMoreHeadsThanTheLimitIsRefusedNamingTheOption()
    {
        // rec/forecast configs and --head-dim reach the mixer through WithMixer, not through a config.json's Validate.
        var wide = new MambaConfig { DModel = 1024 };   // d_inner 2048
        Assert.Equal(1024, wide.WithMixer(MixerKind.Mamba2, headDim: 2).Heads);
        var e = Assert.Throws<ArgumentException>(() => wide.WithMixer(MixerKind.Mamba2, headDim: 1));
        Assert.Equal($"--head-dim 1 makes 2048 heads of the mixer's width 2048; at most {ModelLimits.Heads}", e.Message);
    }

    [Fact]
    public void AMamba4RecConfigsHeadDimGivingTooManyHeadsNamesTheFileAndField()
    {
        var r = IO.ConfigReader.Parse("""{"n_items": 10, "hidden_size": 1024, "mixer": "mamba2", "head_dim": 1}""", "rec.json");
        var e = Assert.Throws<FormatException>(() => Tasks.Recommendation.RecModels.ReadMamba4Rec(r));
        Assert.StartsWith("rec.json: field 'head_dim': ", e.Message);
        Assert.Contains($"at most {ModelLimits.Heads} heads", e.Message);
    }

    /// <summary>What ToJson writes reads back as the same model (the sizes it derives are written out explicitly).</summary>
    private static void AssertRoundTrips(MambaConfig c)
    {
        var back = MambaConfig.FromJson(c.ToJson());
        Assert.Equal(c with { IntermediateSize = c.DInner, TimeStepRank = c.DtRank, NumHeads = c.Heads }, back);
    }

    /// <summary>The gated RMSNorm against a float64 loop over groups, both gate orders, then its gradients by finite differences.</summary>
    [Theory]
    [InlineData(1, false)]
    [InlineData(2, false)]
    [InlineData(1, true)]
    [InlineData(4, true)]
    public void GatedRmsNormMatchesFloat64AndItsGradientsFiniteDifferences(int groups, bool normBeforeGate)
    {
        const int rows = 6, e = 16;
        const float eps = 1e-5f;
        var rng = new Random(groups * 10 + (normBeforeGate ? 1 : 0));
        using var norm = new RmsNormGated(e, groups, normBeforeGate, eps);
        var w = norm.Weight.AsSpan<float>();
        for (int i = 0; i < e; i++) w[i] = (float)(0.5 + rng.NextDouble());
        using var y = GradCheck.Random(rng, 2f, 2, rows / 2, e);
        using var z = GradCheck.Random(rng, 2f, 2, rows / 2, e);
        float[] ys = y.ToFloatArray(), zs = z.ToFloatArray(), ws = norm.Weight.ToFloatArray();
        var expected = new double[rows * e];
        int gs = e / groups;
        static double Silu(double v) => v / (1 + Math.Exp(-v));
        for (int r = 0; r < rows; r++)
            for (int g = 0; g < groups; g++)
            {
                double ms = 0;
                for (int j = 0; j < gs; j++)
                {
                    int i = r * e + g * gs + j;
                    double v = normBeforeGate ? ys[i] : ys[i] * Silu(zs[i]);
                    ms += v * v / gs;
                }
                for (int j = 0; j < gs; j++)
                {
                    int i = r * e + g * gs + j;
                    double v = normBeforeGate ? ys[i] : ys[i] * Silu(zs[i]);
                    expected[i] = v / Math.Sqrt(ms + eps) * ws[g * gs + j] * (normBeforeGate ? Silu(zs[i]) : 1);
                }
            }
        using (var scope = new TensorScope())
        using (GradMode.NoGrad())
            ModelFixtureTests.AssertClose(expected, norm.Forward(y, z).ToFloatArray(), 1e-5, 1e-6, "gated norm");
        // The weight is the module's own parameter, nudged in place like y and z.
        GradCheck.Check(t => norm.Forward(t[0], t[1]), [y, z, norm.Weight], eps: 1e-3);
    }
}
