using Mamba4.IO;
using Mamba4.Models;
using Mamba4.Tensors;
using Mamba4.Ops;

namespace Mamba4.Tests;

/// <summary>SASRec against the float64 fixture made with RecBole's own TransformerEncoder (fixtures/sasrec).</summary>
public class SASRecFixtureTests
{
    internal static SASRec LoadFixtureModel(out string dir)
    {
        dir = Fixtures.Path_("sasrec");
        var config = RecConfigJson.ReadSASRec(File.ReadAllText(Path.Combine(dir, "config.json")), "sasrec/config.json");
        Assert.Equal((40, 12, 16, 2, 64, 2, 1e-12f, 0f, 0f), (config.NItems, config.MaxSeqLength, config.HiddenSize, config.NHeads,
            config.InnerSize, config.NLayers, config.LayerNormEps, config.HiddenDropout, config.AttnDropout));
        var model = new SASRec(config);
        model.LoadSafetensors(Path.Combine(dir, "model.safetensors"));
        return model;
    }

    [Fact]
    public void SeqOutputScoresLossAndEveryGradient()
    {
        using var model = LoadFixtureModel(out var dir);
        model.Eval();
        using var reference = SafetensorsFile.Open(Path.Combine(dir, "reference.safetensors"));
        using var scope = new TensorScope();
        var itemSeq = reference.Get("item_seq");
        // The fixture exercises right padding (RecBole's key-padding mask) on at least one row.
        Assert.Contains(itemSeq.ToInt64Array(), id => id == 0);
        var seqOutput = model.Forward(itemSeq, reference.Get("item_seq_len"));
        ModelFixtureTests.AssertClose(reference.Get("seq_output").ToDoubleArray(), seqOutput.ToFloatArray(), 1e-5, 1e-5, "seq_output");
        var scores = model.Scores(seqOutput);
        ModelFixtureTests.AssertClose(reference.Get("scores").ToDoubleArray(), scores.ToFloatArray(), 1e-5, 1e-5, "scores");
        var loss = F.CrossEntropy(scores, reference.Get("pos_items"));
        Assert.Equal(reference.Get("loss").ToDoubleArray()[0], loss.Item(), 1e-5);
        loss.Backward();
        int checkedGrads = 0;
        foreach (var (name, p) in model.NamedParameters())
        {
            ModelFixtureTests.AssertClose(reference.Get("grad." + name).ToDoubleArray(), p.Grad!.ToFloatArray(), 1e-4, 1e-5, "grad." + name);
            checkedGrads++;
        }
        Assert.Equal(reference.Tensors.Count(t => t.Name.StartsWith("grad.", StringComparison.Ordinal)), checkedGrads);
        model.ZeroGrad();
    }

    [Fact]
    public void ParameterNamesAreRecBoles()
    {
        using var model = LoadFixtureModel(out var dir);
        using var weights = SafetensorsFile.Open(Path.Combine(dir, "model.safetensors"));
        Assert.Equal(weights.Tensors.Select(t => t.Name).Order(StringComparer.Ordinal), model.NamedParameters().Select(p => p.Name).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void LossHelperEqualsCrossEntropyOfScores()
    {
        using var model = LoadFixtureModel(out var dir);
        model.Eval();
        using var reference = SafetensorsFile.Open(Path.Combine(dir, "reference.safetensors"));
        using var scope = new TensorScope();
        var loss = model.Loss(reference.Get("item_seq"), reference.Get("item_seq_len"), reference.Get("pos_items"));
        Assert.Equal(reference.Get("loss").ToDoubleArray()[0], loss.Item(), 1e-5);
    }
    [Fact]
    public void TrainingAppliesHiddenAndAttentionDropoutEvalDoesNot()
    {
        using var scope = new TensorScope();
        using var _ = Autograd.GradMode.NoGrad();
        var seq = Tensor.From(new long[] { 3, 7, 9, 0, 0, 5, 6, 1, 2, 0 }, 2, 5);
        var lens = Tensor.From(new long[] { 3, 4 }, 2);
        var config = new SASRecConfig { NItems = 12, MaxSeqLength = 5, HiddenSize = 8, NHeads = 2, InnerSize = 16 };
        using var model = new SASRec(config, seed: 3);
        model.Eval();
        var eval = model.Forward(seq, lens).ToFloatArray();
        Assert.Equal(eval, model.Forward(seq, lens).ToFloatArray());
        model.Train();
        var a = model.Forward(seq, lens).ToFloatArray();
        var b = model.Forward(seq, lens).ToFloatArray();
        Assert.NotEqual(eval, a);
        Assert.NotEqual(a, b);                                // a fresh mask per call
        // Only attention dropout: still random in training.
        using var attnOnly = new SASRec(config with { HiddenDropout = 0f }, seed: 3);
        attnOnly.Train();
        Assert.NotEqual(attnOnly.Forward(seq, lens).ToFloatArray(), attnOnly.Forward(seq, lens).ToFloatArray());
        // No dropout at all: training mode computes the eval function.
        using var none = new SASRec(config with { HiddenDropout = 0f, AttnDropout = 0f }, seed: 3);
        none.Train();
        var trained = none.Forward(seq, lens).ToFloatArray();
        none.Eval();
        Assert.Equal(none.Forward(seq, lens).ToFloatArray(), trained);
        Assert.Throws<ArgumentException>(() => model.Forward(Tensor.Zeros(new Shape(1, 6), DType.I64), Tensor.From(new long[] { 1 }, 1)));
    }

    [Fact]
    public void InitIsRecBoles()
    {
        using var model = new SASRec(new SASRecConfig { NItems = 3000, MaxSeqLength = 50 }, seed: 1);
        var emb = model.ItemEmbedding.Weight.ToFloatArray();
        double std = Math.Sqrt(emb.Select(v => (double)v * v).Average());
        Assert.InRange(std, 0.0194, 0.0206);                      // normal(0, 0.02)
        Assert.Contains(emb.Take(64), v => v != 0);               // the padding row is drawn too
        var attn = model.Encoder.Layers[0].MultiHeadAttention;
        Assert.All(attn.Query.Bias!.ToFloatArray(), b => Assert.Equal(0f, b));
        Assert.All(attn.Norm.Weight.ToFloatArray(), w => Assert.Equal(1f, w));
        Assert.Equal((2, 2, 256, 0.5f, 0.5f), (model.Config.NLayers, model.Config.NHeads, model.Config.InnerSize, model.Config.HiddenDropout, model.Config.AttnDropout));
    }
    [Fact]
    public void SavedDirectoryRoundTripsConfigAndWeights()
    {
        using var model = LoadFixtureModel(out var dir);
        model.Eval();
        var outDir = Directory.CreateTempSubdirectory("mamba4-sasrec-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(outDir, "config.json"), RecConfigJson.Write(model.Config));
            model.SaveSafetensors(Path.Combine(outDir, "model.safetensors"));
            var json = File.ReadAllText(Path.Combine(outDir, "config.json"));
            Assert.Equal("sasrec", RecConfigJson.ModelKind(json));
            Assert.Null(RecConfigJson.ModelKind(File.ReadAllText(Path.Combine(dir, "config.json"))));
            using var copy = new SASRec(RecConfigJson.ReadSASRec(json), seed: 99);
            Assert.Equal(model.Config, copy.Config);
            copy.LoadSafetensors(Path.Combine(outDir, "model.safetensors"));
            copy.Eval();
            using var reference = SafetensorsFile.Open(Path.Combine(dir, "reference.safetensors"));
            using var scope = new TensorScope();
            var seq = reference.Get("item_seq");
            var lens = reference.Get("item_seq_len");
            Assert.Equal(model.Forward(seq, lens).ToFloatArray(), copy.Forward(seq, lens).ToFloatArray());
        }
        finally { Directory.Delete(outDir, true); }
        Assert.Contains("c.json: field 'n_items' is missing", Assert.Throws<FormatException>(() => RecConfigJson.ReadSASRec("{}", "c.json")).Message);
        Assert.Contains("config.json: field 'n_heads': expected a positive integer ≤ 1024, got \"two\"", Assert.Throws<FormatException>(() => RecConfigJson.ReadSASRec("{\"n_items\": 5, \"n_heads\": \"two\"}")).Message);
        Assert.Contains("not valid JSON", Assert.Throws<FormatException>(() => RecConfigJson.ReadSASRec("{")).Message);
    }
}
