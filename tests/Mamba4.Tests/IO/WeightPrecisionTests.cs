using System.Text.Json.Nodes;
using Mamba4.Inference;
using Mamba4.IO;
using Mamba4.Models;
using Mamba4.Tasks.LanguageModeling;
using Mamba4.Tensors;

namespace Mamba4.Tests;

/// <summary>
/// Models with BF16, F16 and int8 weights: `mamba4 quantize` (its layout read back, the dequantized weights within
/// scale/2 of the originals), loading (each weight's type, --dtype, the checkpoint's own type by default), greedy
/// generation on the transformers fixture, and bad int8 checkpoints (one-line errors naming the tensor).
/// </summary>
public class WeightPrecisionTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mamba4-precision-").FullName;
    private static string Fixture => Fixtures.Path_("hf-mamba");

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Quantized(string name, bool int8, DType? dtype = null)
    {
        var output = Path.Combine(_dir, name);
        Quantize.Run(new QuantizeSettings { Model = Fixture, Out = output, Int8 = int8, DType = dtype }, TextWriter.Null);
        return output;
    }

    [Fact]
    public void Int8LayoutReadsBackWithinHalfAScaleOfTheOriginal()
    {
        var dir = Quantized("int8", int8: true);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "config.json")))!;
        Assert.Equal("mamba4_int8", (string?)config["quantization_config"]!["quant_method"]);
        using var original = SafetensorsFile.Open(Path.Combine(Fixture, "model.safetensors"));
        using var written = SafetensorsFile.Open(Path.Combine(dir, "model.safetensors"));
        string[] matrices = ["backbone.embeddings.weight", "backbone.layers.0.mixer.in_proj.weight", "backbone.layers.0.mixer.x_proj.weight",
            "backbone.layers.0.mixer.dt_proj.weight", "backbone.layers.0.mixer.out_proj.weight"];
        foreach (var name in matrices)
        {
            var q = written.Info(name);
            var s = written.Info(name + "_scale");
            Assert.Equal(DType.I8, q.DType);
            Assert.Equal(DType.F32, s.DType);
            Assert.Equal(new Shape(q.Shape[0]), s.Shape);
            using var w = original.Get(name, DType.F32);
            using var qt = written.Get(name);
            using var st = written.Get(name + "_scale");
            var wv = w.AsSpan<float>();
            var qv = qt.AsSpan<sbyte>();
            var sv = st.AsSpan<float>();
            int cols = q.Shape[1];
            for (int r = 0; r < sv.Length; r++)
            {
                double max = 0;
                for (int i = 0; i < cols; i++) max = Math.Max(max, Math.Abs(wv[r * cols + i]));
                Assert.Equal(max / 127, sv[r], 1e-6 * max);   // the scale is max|w|/127
                for (int i = 0; i < cols; i++)
                    Assert.True(Math.Abs(qv[r * cols + i] * (double)sv[r] - wv[r * cols + i]) <= sv[r] / 2 * (1 + 1e-6),
                        $"{name}[{r}, {i}]: {qv[r * cols + i]}·{sv[r]} is more than scale/2 from {wv[r * cols + i]}");
            }
        }
        // Norms, the convolution and the SSM parameters stay F32.
        Assert.Equal(DType.F32, written.Info("backbone.layers.0.mixer.A_log").DType);
        Assert.Equal(DType.F32, written.Info("backbone.norm_f.weight").DType);
    }

    [Fact]
    public void QuantizationKeepsZeroRowsAndRefusesNonFiniteWeights()
    {
        using var w = Tensor.From(new float[] { 0, 0, 0, 0.75f, -2, 0.5f }, 2, 3);
        var (q, s) = WeightQuantization.Quantize(w, "m.weight");
        using (q) using (s)
        {
            Assert.Equal(new float[] { 0, 2f / 127 }, s.AsSpan<float>().ToArray());
            Assert.Equal(new sbyte[] { 0, 0, 0, 48, -127, 32 }, q.AsSpan<sbyte>().ToArray());   // 0.75·63.5 = 47.625, 0.5·63.5 = 31.75
        }
        using var bad = Tensor.From(new float[] { 1, float.NaN }, 1, 2);
        var e = Assert.Throws<InvalidDataException>(() => WeightQuantization.Quantize(bad, "m.weight"));
        Assert.Contains("'m.weight'", e.Message);
        Assert.Contains("index 1", e.Message);
    }

    [Theory]
    [InlineData(null, DType.I8)]
    [InlineData(DType.BF16, DType.BF16)]
    [InlineData(DType.F32, DType.F32)]
    public void AnInt8CheckpointLoadsAsInt8UnlessToldOtherwise(DType? requested, DType expected)
    {
        var dir = Quantized("int8", int8: true);
        using var model = MambaLM.FromPretrained(dir, new ModelLoadOptions { WeightDType = requested });
        var inProj = model.Backbone.Layers[0].Mixer.InProj.Weight;
        Assert.Equal(expected, inProj.DType);
        Assert.Equal(expected, model.LmHead.DType);   // tied: the embeddings
        Assert.Equal(expected == DType.I8, inProj.RowScale is not null);
        Assert.Equal(DType.F32, ((Mamba4.Nn.MambaMixer)model.Backbone.Layers[0].Mixer).ALog.DType);
        Assert.Equal(DType.F32, model.Backbone.NormF.Weight.DType);
    }

    [Fact]
    public void ABf16CheckpointStaysBf16AndAnF32OneF32()
    {
        using (var f32 = MambaLM.FromPretrained(Fixture))
            Assert.Equal(DType.F32, f32.Backbone.Layers[0].Mixer.OutProj.Weight.DType);
        using var bf16 = MambaLM.FromPretrained(Quantized("bf16", int8: false, DType.BF16));
        Assert.Equal(DType.BF16, bf16.Backbone.Layers[0].Mixer.OutProj.Weight.DType);
        Assert.Equal(DType.BF16, bf16.LmHead.DType);
        Assert.False(bf16.Backbone.Layers[0].Mixer.OutProj.Weight.RequiresGrad);
    }

    /// <summary>The memory check counts the matrices at the type they will be kept in: a limit that refuses the model in F32
    /// admits it in BF16 (estimate: 2 bytes a matrix element, 4 for the rest and for the largest tensor's conversion buffer).</summary>
    [Fact]
    public void TheMemoryEstimateCountsTheKeptType()
    {
        var shapes = MambaLM.Shapes(MambaConfig.FromJsonFile(Path.Combine(Fixture, "config.json")));
        long matrices = shapes.Where(p => p.Shape.Rank == 2 && p.Name.EndsWith("weight")).Sum(p => p.Shape.NumElements);
        long bf16 = ModelFiles.EstimateBytes(shapes) - 2 * matrices;
        Assert.Equal(bf16, ModelFiles.EstimateBytes(shapes, (name, shape) => shape.Rank == 2 && name.EndsWith("weight") ? 2 : 4));
        var e = Assert.Throws<InsufficientMemoryException>(() => MambaLM.FromPretrained(Fixture, new ModelLoadOptions { HostMemoryLimit = bf16 }));
        Assert.Contains("parameters as F32", e.Message);
        using var model = MambaLM.FromPretrained(Fixture, new ModelLoadOptions { HostMemoryLimit = bf16, WeightDType = DType.BF16 });
        Assert.Equal(DType.BF16, model.LmHead.DType);
    }

    /// <summary>
    /// The fixture's greedy continuation (transformers, float64 from the F32 weights) with the weights kept in BF16, F16
    /// and int8: the same ids. (The fixture model's top logits are far enough apart for rounding not to flip them;
    /// a model whose logits tie more closely may legitimately diverge.)
    /// </summary>
    [Theory]
    [InlineData("bf16")]
    [InlineData("f16")]
    [InlineData("int8")]
    public void GreedyIdsMatchTheFixtureWithNarrowWeights(string precision)
    {
        using var model = precision == "int8"
            ? MambaLM.FromPretrained(Quantized("int8", int8: true))
            : MambaLM.FromPretrained(Fixture, new ModelLoadOptions { WeightDType = precision == "bf16" ? DType.BF16 : DType.F16 });
        Assert.True(model.LmHead.DType.IsNarrowWeight());
        using var reference = SafetensorsFile.Open(Path.Combine(Fixture, "reference.safetensors"));
        var prompt = reference.Get("generate.prompt").ToInt64Array();
        var expected = reference.Get("generate.output").ToInt64Array();
        Assert.Equal(expected, Generator.Greedy(model, prompt, expected.Length - prompt.Length));
    }

    /// <summary>A copy of the int8 checkpoint with its tensors changed by <paramref name="edit"/>.</summary>
    private string Int8With(Action<Dictionary<string, Tensor>> edit, bool keepQuantizationConfig = true)
    {
        var src = Quantized("int8-src", int8: true);
        var dir = Path.Combine(_dir, "bad");
        Directory.CreateDirectory(dir);
        var tensors = Safetensors.LoadAll(Path.Combine(src, "model.safetensors"));
        try
        {
            edit(tensors);
            Safetensors.Save(Path.Combine(dir, "model.safetensors"), tensors);
        }
        finally { foreach (var t in tensors.Values) t.Dispose(); }
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(src, "config.json")))!.AsObject();
        if (!keepQuantizationConfig) config.Remove("quantization_config");
        File.WriteAllText(Path.Combine(dir, "config.json"), config.ToJsonString());
        return dir;
    }

    private static void FailsNaming(string dir, params string[] expected)
    {
        var e = Assert.ThrowsAny<Exception>(() => MambaLM.FromPretrained(dir).Dispose());
        Assert.True(e is InvalidDataException or FormatException, e.GetType().Name + ": " + e.Message);
        Assert.DoesNotContain('\n', e.Message);
        foreach (var part in expected) Assert.Contains(part, e.Message);
    }

    [Fact]
    public void ANaNInABf16WeightKeptBf16IsRefusedWithItsIndex()
    {
        var src = Quantized("bf16", int8: false, DType.BF16);
        var dir = Path.Combine(_dir, "nan");
        Directory.CreateDirectory(dir);
        File.Copy(Path.Combine(src, "config.json"), Path.Combine(dir, "config.json"));
        var tensors = Safetensors.LoadAll(Path.Combine(src, "model.safetensors"));
        const string name = "backbone.layers.1.mixer.in_proj.weight";
        try
        {
            tensors[name].AsSpan<BFloat16>()[77] = (BFloat16)float.NaN;
            Safetensors.Save(Path.Combine(dir, "model.safetensors"), tensors);
        }
        finally { foreach (var t in tensors.Values) t.Dispose(); }
        FailsNaming(dir, $"tensor '{name}' holds NaN at index 77");
    }

    [Fact]
    public void AScaleOfTheWrongShapeIsRefusedNamingIt()
    {
        const string name = "backbone.layers.0.mixer.out_proj.weight_scale";
        var dir = Int8With(t =>
        {
            t[name].Dispose();
            t[name] = Tensor.Ones(new Shape(3));
        });
        FailsNaming(dir, $"'{name}' must be F32 [", "found F32[3]");
    }

    [Fact]
    public void AMissingScaleIsRefusedNamingTheWeight()
    {
        const string name = "backbone.layers.0.mixer.in_proj.weight";
        var dir = Int8With(t =>
        {
            t[name + "_scale"].Dispose();
            t.Remove(name + "_scale");
        });
        FailsNaming(dir, $"'{name}' is I8 but its scale '{name}_scale'", "is missing");
    }

    [Fact]
    public void AnInt8TensorWithoutQuantizationConfigIsRefused()
    {
        var dir = Int8With(_ => { }, keepQuantizationConfig: false);
        FailsNaming(dir, "is I8, but", "config.json has no quantization_config");
    }

    [Fact]
    public void AnotherQuantizationMethodIsRefusedNamingTheField()
    {
        var dir = Int8With(_ => { });
        var path = Path.Combine(dir, "config.json");
        var config = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        config["quantization_config"]!["quant_method"] = "gptq";
        File.WriteAllText(path, config.ToJsonString());
        FailsNaming(dir, "quantization_config.quant_method", "gptq");
    }

    [Theory]
    [InlineData("granularity", "\"per_tensor\"")]
    [InlineData("scale_suffix", "\"_s\"")]
    [InlineData("symmetric", "false")]
    public void AQuantizationConfigFieldThatDescribesAnotherLayoutIsRefusedNamingIt(string field, string value)
    {
        var dir = Int8With(_ => { });
        var path = Path.Combine(dir, "config.json");
        var config = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        config["quantization_config"]![field] = JsonNode.Parse(value);
        File.WriteAllText(path, config.ToJsonString());
        FailsNaming(dir, $"quantization_config.{field}");
    }

    [Theory]
    [InlineData(null)]          // kept as I8
    [InlineData(DType.F32)]     // widened at load (the GPU's path too)
    public void ANegativeRowScaleIsRefusedNamingTheTensorAndRow(DType? requested)
    {
        const string name = "backbone.layers.1.mixer.out_proj.weight_scale";
        var dir = Int8With(t => t[name].AsSpan<float>()[2] = -0.5f);
        var e = Assert.Throws<InvalidDataException>(() => MambaLM.FromPretrained(dir, new ModelLoadOptions { WeightDType = requested }).Dispose());
        Assert.Contains($"tensor '{name}' holds -0.5 at index 2", e.Message);
        Assert.Contains("never negative", e.Message);
    }

    /// <summary>`serve` with int8 weights (the checkpoint's own) and with --dtype bf16: the batched step's greedy completion is the fixture's.</summary>
    [Theory]
    [InlineData("int8")]
    [InlineData("bf16")]
    public async Task ServeGreedyCompletionWithNarrowWeightsIsTheFixtures(string precision)
    {
        var dir = precision == "int8" ? Quantized("int8", int8: true) : Fixture;
        using var reference = SafetensorsFile.Open(Path.Combine(Fixture, "reference.safetensors"));
        var prompt = reference.Get("generate.prompt").ToInt64Array();
        var expected = reference.Get("generate.output").ToInt64Array();
        var options = new Mamba4.Server.ServerOptions { ModelDir = dir, Load = new ModelLoadOptions { WeightDType = precision == "bf16" ? DType.BF16 : null } };
        await using var server = await Server.ServerHarness.StartAsync(options);
        var (status, body, text) = await server.PostAsync("/v1/completions", System.Text.Json.JsonSerializer.Serialize(new { prompt, max_tokens = expected.Length - prompt.Length, temperature = 0 }));
        Assert.True(status == 200, text);
        Assert.Equal(expected[prompt.Length..], body!["choices"]![0]!["token_ids"]!.AsArray().Select(n => n!.GetValue<long>()));
    }

    [Fact]
    public void CliQuantizesAndGeneratesWithEachDType()
    {
        var int8 = Path.Combine(_dir, "cli-int8");
        var (code, stdout, stderr) = CliTests.Run("quantize", "--model", Fixture, "--out", int8, "--int8");
        Assert.True(code == 0, stderr);
        Assert.Contains("as I8 with F32 row scales", stdout);
        using var reference = SafetensorsFile.Open(Path.Combine(Fixture, "reference.safetensors"));
        var prompt = reference.Get("generate.prompt").ToInt64Array();
        var expected = string.Join(",", reference.Get("generate.output").ToInt64Array());
        int count = expected.Split(',').Length - prompt.Length;
        foreach (var (model, dtype) in new[] { (int8, (string?)null), (Fixture, "bf16"), (Fixture, "f16") })
        {
            string[] args = ["generate", "--model", model, "--prompt-ids", string.Join(",", prompt), "--max-new-tokens", count.ToString(), "--greedy"];
            var run = CliTests.Run(dtype is null ? args : [.. args, "--dtype", dtype]);
            Assert.True(run.ExitCode == 0, run.StdErr);
            Assert.Equal(expected, run.StdOut.Trim().Split('\n')[^1]);
        }
        var bad = CliTests.Run("generate", "--model", Fixture, "--prompt-ids", "1", "--dtype", "int4");
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("--dtype int4: expected f32, bf16 or f16", bad.StdErr);
        var both = CliTests.Run("quantize", "--model", Fixture, "--out", Path.Combine(_dir, "x"), "--int8", "--dtype", "bf16");
        Assert.Equal(1, both.ExitCode);
        Assert.Contains("exactly one of --int8 and --dtype", both.StdErr);
    }
}
