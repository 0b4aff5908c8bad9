using System.Text.Json.Nodes;
using Mamba4.IO;
using Mamba4.Models;
using Mamba4.Nn;
using Mamba4.Tensors;

namespace Mamba4.Tests;

/// <summary>Config mapping, initialisation statistics, state dicts and bad model directories.</summary>
public class ModelLoadingTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mamba4-load-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string CopyFixture()
    {
        var src = Fixtures.Path_("hf-mamba");
        foreach (var f in new[] { "config.json", "model.safetensors" }) File.Copy(Path.Combine(src, f), Path.Combine(_dir, f));
        return _dir;
    }

    [Fact]
    public void HfConfigFieldsMapOntoMambaConfig()
    {
        var c = MambaConfig.FromJsonFile(Fixtures.Path_("hf-mamba", "config.json"));
        Assert.Equal((32, 2, 8, 4, 64, 2, 96), (c.DModel, c.NLayer, c.DState, c.DConv, c.DInner, c.DtRank, c.VocabSize));
        Assert.False(c.Bias);
        Assert.True(c.ConvBias && c.TieEmbeddings && c.ResidualInFp32 && c.Selective);
        var back = MambaConfig.FromJson(c.ToJson());
        Assert.Equal(c, back);
        Assert.Equal(48, new MambaConfig { DModel = 768 }.DtRank);   // "auto" = ⌈768/16⌉
        Assert.Equal(1, MambaConfig.FromJson("""{"hidden_size": 16, "time_step_rank": "auto"}""").DtRank);
    }

    [Fact]
    public void ConfigErrorsNameTheField()
    {
        Assert.Contains("'state_size'", Assert.Throws<FormatException>(() => MambaConfig.FromJson("""{"state_size": "big"}""")).Message);
        Assert.Contains("'hidden_size'", Assert.Throws<FormatException>(() => MambaConfig.FromJson("""{"hidden_size": 0}""")).Message);
        Assert.Contains("line", Assert.Throws<FormatException>(() => MambaConfig.FromJson("{\n\"a\": }")).Message);
    }

    [Fact]
    public void InitialisationFollowsMambaSsm()
    {
        var config = new MambaConfig { DModel = 64, NLayer = 2, DState = 16, VocabSize = 100, DtMin = 0.001, DtMax = 0.1 };
        using var model = new MambaLM(config, seed: 4);
        var mixer = (MambaMixer)model.Backbone.Layers[0].Mixer;
        // A_log = log(1..N) in every channel; D = 1.
        var aLog = mixer.ALog.ToFloatArray();
        for (int c = 0; c < config.DInner; c++)
            for (int s = 0; s < 16; s++) Assert.Equal(Math.Log(s + 1), aLog[c * 16 + s], 1e-6);
        Assert.All(mixer.D.ToFloatArray(), v => Assert.Equal(1f, v));
        // softplus(dt bias) is log-uniform in [dt_min, dt_max]: its log has mean (ln dt_min + ln dt_max)/2 and the range's spread.
        var dt = mixer.DtProj!.Bias!.ToFloatArray().Select(b => Math.Log(Math.Log(1 + Math.Exp(b)))).ToArray();
        double lo = Math.Log(0.001), hi = Math.Log(0.1);
        Assert.All(dt, v => Assert.InRange(v, lo - 1e-4, hi + 1e-4));
        double mean = dt.Average(), sd = Math.Sqrt(dt.Select(v => (v - mean) * (v - mean)).Average());
        Assert.Equal((lo + hi) / 2, mean, 0.35);                    // 128 samples: σ/√n ≈ 0.12
        Assert.Equal((hi - lo) / Math.Sqrt(12), sd, 0.3);
        // dt_proj.weight ~ U(±dt_rank^-½); in_proj ~ U(±1/√d_model); out_proj additionally /√n_layer.
        double bound = Math.Pow(config.DtRank, -0.5);
        var w = mixer.DtProj.Weight.ToFloatArray();
        Assert.All(w, v => Assert.InRange(v, -bound, bound));
        Assert.Equal(bound / Math.Sqrt(3), Math.Sqrt(w.Select(v => (double)v * v).Average()), 0.15 * bound);
        var inW = mixer.InProj.Weight.ToFloatArray();
        Assert.Equal(1 / Math.Sqrt(64) / Math.Sqrt(3), Math.Sqrt(inW.Select(v => (double)v * v).Average()), 0.01);
        var outW = mixer.OutProj.Weight.ToFloatArray();
        Assert.Equal(1 / Math.Sqrt(128) / Math.Sqrt(3) / Math.Sqrt(2), Math.Sqrt(outW.Select(v => (double)v * v).Average()), 0.01);
        // Embedding ~ N(0, 0.02).
        var emb = model.Backbone.Embeddings.Weight.ToFloatArray();
        Assert.Equal(0.02, Math.Sqrt(emb.Select(v => (double)v * v).Average()), 0.002);
    }

    [Fact]
    public void SaveLoadRoundTripIsExact()
    {
        var config = new MambaConfig { DModel = 16, NLayer = 2, DState = 4, VocabSize = 30 };
        using var a = new MambaLM(config, seed: 1);
        using var b = new MambaLM(config, seed: 2);
        var path = Path.Combine(_dir, "model.safetensors");
        a.SaveSafetensors(path);
        Assert.True(b.LoadSafetensors(path).IsClean);
        foreach (var ((na, ta), (nb, tb)) in a.NamedParameters().Zip(b.NamedParameters()))
        {
            Assert.Equal(na, nb);
            Assert.Equal(ta.ToFloatArray(), tb.ToFloatArray());
        }
    }

    [Fact]
    public void LoadsBf16AndShardedCheckpoints()
    {
        using var reference = MambaLM.FromPretrained(Fixtures.Path_("hf-mamba"));
        File.Copy(Fixtures.Path_("hf-mamba", "config.json"), Path.Combine(_dir, "config.json"));
        var all = reference.NamedParameters().ToList();
        var half = all.Count / 2;
        var shards = new[] { all.Take(half), all.Skip(half) };
        var map = new JsonObject();
        for (int i = 0; i < 2; i++)
        {
            var file = $"model-0000{i + 1}-of-00002.safetensors";
            var converted = shards[i].Select(p => (p.Name, p.Tensor.To(DType.BF16))).ToList();
            Safetensors.Save(Path.Combine(_dir, file), converted);
            foreach (var (n, t) in converted) { map[n] = file; t.Dispose(); }
        }
        File.WriteAllText(Path.Combine(_dir, "model.safetensors.index.json"), new JsonObject { ["weight_map"] = map }.ToJsonString());
        using var loaded = MambaLM.FromPretrained(_dir);
        foreach (var ((_, r), (_, l)) in reference.NamedParameters().Zip(loaded.NamedParameters()))
        {
            var rv = r.ToFloatArray(); var lv = l.ToFloatArray();
            for (int i = 0; i < rv.Length; i++) Assert.Equal(rv[i], lv[i], Math.Abs(rv[i]) / 128 + 1e-30);
        }
    }

    [Fact]
    public void MissingTensorIsNamed()
    {
        var dir = CopyFixture();
        var tensors = SafetensorsFile.LoadAll(Path.Combine(dir, "model.safetensors"));
        tensors.Remove("backbone.layers.1.mixer.D");
        Safetensors.Save(Path.Combine(dir, "model.safetensors"), tensors);
        var e = Assert.Throws<InvalidDataException>(() => MambaLM.FromPretrained(dir));
        Assert.Contains("missing: backbone.layers.1.mixer.D", e.Message);
    }

    [Fact]
    public void WrongShapeAndUnexpectedTensorsAreNamed()
    {
        var dir = CopyFixture();
        var tensors = SafetensorsFile.LoadAll(Path.Combine(dir, "model.safetensors"));
        tensors["backbone.norm_f.weight"] = Tensor.Zeros(new Shape(31));
        tensors["backbone.extra"] = Tensor.Zeros(new Shape(2));
        Safetensors.Save(Path.Combine(dir, "model.safetensors"), tensors);
        var e = Assert.Throws<InvalidDataException>(() => MambaLM.FromPretrained(dir));
        Assert.Contains("backbone.norm_f.weight: expected [32], found [31]", e.Message);
        Assert.Contains("unexpected: backbone.extra", e.Message);
    }

    [Fact]
    public void ConfigContradictingWeightsIsNamed()
    {
        var dir = CopyFixture();
        var path = Path.Combine(dir, "config.json");
        File.WriteAllText(path, File.ReadAllText(path).Replace("\"state_size\": 8", "\"state_size\": 16"));
        var e = Assert.Throws<InvalidDataException>(() => MambaLM.FromPretrained(dir));
        Assert.Contains("backbone.layers.0.mixer.A_log: expected [64, 16], found [64, 8]", e.Message);
    }

    [Fact]
    public void TruncatedFileAndUnknownDtypeFailClearly()
    {
        var dir = CopyFixture();
        var path = Path.Combine(dir, "model.safetensors");
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..(bytes.Length - 100)]);
        var e = Assert.Throws<SafetensorsFormatException>(() => MambaLM.FromPretrained(dir));
        Assert.Contains(path, e.Message);

        // An integer tensor where a weight belongs.
        var tensors = SafetensorsFile.LoadAll(Fixtures.Path_("hf-mamba", "model.safetensors"));
        tensors["backbone.norm_f.weight"] = Tensor.Zeros(new Shape(32), DType.I32);
        Safetensors.Save(path, tensors);
        var e2 = Assert.Throws<InvalidDataException>(() => MambaLM.FromPretrained(dir));
        Assert.Contains("backbone.norm_f.weight", e2.Message);
        Assert.Contains("I32", e2.Message);
    }
}
