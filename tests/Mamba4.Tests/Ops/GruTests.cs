using Mamba4.Autograd;
using Mamba4.Models;
using Mamba4.Tensors;
using Mamba4.Ops;

namespace Mamba4.Tests;

/// <summary>The GRU op against a plain double-precision recurrence (forward, and every gradient by double
/// finite differences), float32 gradient checks, and the GRU4Rec model built on it.</summary>
public class GruTests
{
    /// <summary>torch.nn.GRU's recurrence in double, written out (gate rows r, z, n).</summary>
    private static double[] ReferenceForward(double[] x, double[] wIh, double[] wHh, double[]? bIh, double[]? bHh, double[]? h0, int b, int l, int inp, int h)
    {
        var y = new double[b * l * h];
        for (int bi = 0; bi < b; bi++)
        {
            var hPrev = new double[h];
            if (h0 is not null) Array.Copy(h0, bi * h, hPrev, 0, h);
            for (int t = 0; t < l; t++)
            {
                var gi = new double[3 * h];
                var gh = new double[3 * h];
                for (int g = 0; g < 3 * h; g++)
                {
                    double si = bIh?[g] ?? 0, sh = bHh?[g] ?? 0;
                    for (int k = 0; k < inp; k++) si += wIh[g * inp + k] * x[(bi * l + t) * inp + k];
                    for (int k = 0; k < h; k++) sh += wHh[g * h + k] * hPrev[k];
                    gi[g] = si;
                    gh[g] = sh;
                }
                var hNew = new double[h];
                for (int j = 0; j < h; j++)
                {
                    double r = 1 / (1 + Math.Exp(-(gi[j] + gh[j])));
                    double z = 1 / (1 + Math.Exp(-(gi[h + j] + gh[h + j])));
                    double n = Math.Tanh(gi[2 * h + j] + r * gh[2 * h + j]);
                    hNew[j] = (1 - z) * n + z * hPrev[j];
                    y[(bi * l + t) * h + j] = hNew[j];
                }
                hPrev = hNew;
            }
        }
        return y;
    }

    private static double[] Rand(Random rng, int n, double scale) => Enumerable.Range(0, n).Select(_ => (rng.NextDouble() * 2 - 1) * scale).ToArray();

    private static Tensor F32(double[] v, params int[] shape) => Tensor.From(v.Select(d => (float)d).ToArray(), shape);

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, true)]
    public void ForwardAndEveryGradientMatchTheDoubleReference(bool bias, bool initialState)
    {
        const int b = 3, l = 6, inp = 5, h = 4;
        var rng = new Random(11);
        // Values rounded to float first, so float and double see the same inputs.
        static double[] Round(double[] v) => v.Select(d => (double)(float)d).ToArray();
        var x = Round(Rand(rng, b * l * inp, 1.0));
        var wIh = Round(Rand(rng, 3 * h * inp, 0.6));
        var wHh = Round(Rand(rng, 3 * h * h, 0.6));
        var bIh = bias ? Round(Rand(rng, 3 * h, 0.5)) : null;
        var bHh = bias ? Round(Rand(rng, 3 * h, 0.5)) : null;
        var h0 = initialState ? Round(Rand(rng, b * h, 0.8)) : null;
        var dy = Rand(rng, b * l * h, 1.0);

        using var scope = new TensorScope();
        var tx = F32(x, b, l, inp);
        var tWih = F32(wIh, 3 * h, inp);
        var tWhh = F32(wHh, 3 * h, h);
        var tBih = bIh is null ? null : F32(bIh, 3 * h);
        var tBhh = bHh is null ? null : F32(bHh, 3 * h);
        var tH0 = h0 is null ? null : F32(h0, b, h);
        var inputs = new[] { tx, tWih, tWhh, tBih, tBhh, tH0 };
        foreach (var t in inputs) if (t is not null) t.RequiresGrad = true;
        var y = F.Gru(tx, tWih, tWhh, tBih, tBhh, tH0);
        var expected = ReferenceForward(x, wIh, wHh, bIh, bHh, h0, b, l, inp, h);
        ModelFixtureTests.AssertClose(expected, y.ToFloatArray(), 1e-5, 1e-6, "gru y");

        // L = Σ y ⊙ dy; the reference gradient of every input by central differences in double.
        var loss = F.Sum(F.Mul(y, F32(dy, b, l, h)));
        loss.Backward();
        double RefLoss() => ReferenceForward(x, wIh, wHh, bIh, bHh, h0, b, l, inp, h).Select((v, i) => v * (double)(float)dy[i]).Sum();
        var arrays = new[] { x, wIh, wHh, bIh, bHh, h0 };
        var names = new[] { "x", "weight_ih", "weight_hh", "bias_ih", "bias_hh", "h0" };
        for (int k = 0; k < arrays.Length; k++)
        {
            if (arrays[k] is not { } a) continue;
            var numeric = new double[a.Length];
            for (int i = 0; i < a.Length; i++)
            {
                double orig = a[i];
                a[i] = orig + 1e-6;
                double plus = RefLoss();
                a[i] = orig - 1e-6;
                double minus = RefLoss();
                a[i] = orig;
                numeric[i] = (plus - minus) / 2e-6;
            }
            ModelFixtureTests.AssertClose(numeric, inputs[k]!.Grad!.ToFloatArray(), 1e-4, 1e-5, "d/d " + names[k]);
        }
    }

    [Fact]
    public void GradCheckWithBiasAndInitialState()
    {
        var rng = new Random(3);
        using var x = GradCheck.Random(rng, 1f, 2, 5, 3);
        using var wIh = GradCheck.Random(rng, 0.5f, 12, 3);
        using var wHh = GradCheck.Random(rng, 0.5f, 12, 4);
        using var bIh = GradCheck.Random(rng, 0.5f, 12);
        using var bHh = GradCheck.Random(rng, 0.5f, 12);
        using var h0 = GradCheck.Random(rng, 0.5f, 2, 4);
        GradCheck.Check(t => F.Gru(t[0], t[1], t[2], t[3], t[4], t[5]), [x, wIh, wHh, bIh, bHh, h0]);
    }

    [Fact]
    public void GradCheckWithoutBiasLongerSequence()
    {
        var rng = new Random(5);
        using var x = GradCheck.Random(rng, 1f, 3, 12, 4);
        using var wIh = GradCheck.Random(rng, 0.5f, 15, 4);
        using var wHh = GradCheck.Random(rng, 0.5f, 15, 5);
        GradCheck.Check(t => F.Gru(t[0], t[1], t[2]), [x, wIh, wHh]);
    }

    [Fact]
    public void LargerBatchUsesTheParallelPathAndStillMatchesTheReference()
    {
        const int b = 70, l = 9, inp = 8, h = 16;
        var rng = new Random(21);
        var x = Rand(rng, b * l * inp, 1.0).Select(d => (double)(float)d).ToArray();
        var wIh = Rand(rng, 3 * h * inp, 0.3).Select(d => (double)(float)d).ToArray();
        var wHh = Rand(rng, 3 * h * h, 0.3).Select(d => (double)(float)d).ToArray();
        using var scope = new TensorScope();
        using var _ = GradMode.NoGrad();
        var y = F.Gru(F32(x, b, l, inp), F32(wIh, 3 * h, inp), F32(wHh, 3 * h, h));
        ModelFixtureTests.AssertClose(ReferenceForward(x, wIh, wHh, null, null, null, b, l, inp, h), y.ToFloatArray(), 1e-5, 1e-5, "gru y");
    }

    [Fact]
    public void BadShapesAreRejectedWithTheArgumentNamed()
    {
        using var scope = new TensorScope();
        var x = Tensor.Zeros(new Shape(2, 3, 4));
        var ex = Assert.Throws<ArgumentException>(() => F.Gru(x, Tensor.Zeros(new Shape(9, 5)), Tensor.Zeros(new Shape(9, 3))));
        Assert.Contains("weight_ih", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => F.Gru(x, Tensor.Zeros(new Shape(9, 4)), Tensor.Zeros(new Shape(9, 4))));
        Assert.Contains("weight_hh", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => F.Gru(x, Tensor.Zeros(new Shape(8, 4)), Tensor.Zeros(new Shape(8, 3))));
        Assert.Contains("3·hidden", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => F.Gru(x, Tensor.Zeros(new Shape(9, 4)), Tensor.Zeros(new Shape(9, 3)), h0: Tensor.Zeros(new Shape(3, 3))));
        Assert.Contains("h0", ex.Message);
    }

    // ---- GRU4Rec ----

    private static GRU4Rec SmallModel(int layers = 1) =>
        new(new GRU4RecConfig { NItems = 30, EmbeddingSize = 8, HiddenSize = 12, NumLayers = layers, Dropout = 0.3f }, seed: 4);

    [Fact]
    public void Gru4RecParameterNamesShapesAndInitAreRecBoles()
    {
        using var model = SmallModel(layers: 2);
        var names = model.NamedParameters().ToDictionary(p => p.Name, p => p.Tensor.Shape);
        Assert.Equal(new Dictionary<string, Shape>
        {
            ["item_embedding.weight"] = new Shape(30, 8),
            ["gru_layers.weight_ih_l0"] = new Shape(36, 8),
            ["gru_layers.weight_hh_l0"] = new Shape(36, 12),
            ["gru_layers.weight_ih_l1"] = new Shape(36, 12),
            ["gru_layers.weight_hh_l1"] = new Shape(36, 12),
            ["dense.weight"] = new Shape(8, 12),
            ["dense.bias"] = new Shape(8),
        }, names);
        // xavier_uniform_ bound on layer 0, PyTorch's U(±1/√H) on layer 1.
        Assert.True(model.GruLayers.WeightIh(0).ToFloatArray().Max(Math.Abs) <= Math.Sqrt(6.0 / (36 + 8)) + 1e-6);
        Assert.True(model.GruLayers.WeightIh(1).ToFloatArray().Max(Math.Abs) <= 1 / Math.Sqrt(12) + 1e-6);
        // xavier_normal_ redraws the padding row too.
        Assert.Contains(model.ItemEmbedding.Weight.ToFloatArray().Take(8), v => v != 0);
    }

    [Fact]
    public void Gru4RecEmbeddingInitHasXavierNormalSpread()
    {
        using var model = new GRU4Rec(new GRU4RecConfig { NItems = 2000, EmbeddingSize = 64 }, seed: 1);
        var w = model.ItemEmbedding.Weight.ToFloatArray();
        double std = Math.Sqrt(w.Select(v => (double)v * v).Average());
        Assert.InRange(std, 0.97 * Math.Sqrt(2.0 / 2064), 1.03 * Math.Sqrt(2.0 / 2064));
    }

    [Fact]
    public void Gru4RecSeqOutputIgnoresPaddingAndEqualsDenseOfTheGruStateAtLenMinusOne()
    {
        using var model = SmallModel();
        model.Eval();
        using var scope = new TensorScope();
        using var _ = GradMode.NoGrad();
        var seq = Tensor.From(new long[] { 3, 7, 9, 0, 0, 5, 6, 0, 0, 0 }, 2, 5);
        var lens = Tensor.From(new long[] { 3, 2 }, 2);
        var outA = model.Forward(seq, lens).ToFloatArray();
        // Same histories without any padding: one row at a time.
        var a = model.Forward(Tensor.From(new long[] { 3, 7, 9 }, 1, 3), Tensor.From(new long[] { 3 }, 1)).ToFloatArray();
        var b = model.Forward(Tensor.From(new long[] { 5, 6 }, 1, 2), Tensor.From(new long[] { 2 }, 1)).ToFloatArray();
        ModelFixtureTests.AssertClose(a.Concat(b).Select(v => (double)v).ToArray(), outA, 1e-6, 1e-6, "seq_output");
        // And it is dense(h_{len−1}) of the raw GRU over the embeddings.
        var emb = model.ItemEmbedding.Forward(Tensor.From(new long[] { 3, 7, 9 }, 1, 3));
        var g = F.Gru(emb, model.GruLayers.WeightIh(0), model.GruLayers.WeightHh(0));
        var last = model.Dense.Forward(g).ToFloatArray().Skip(2 * 8).ToArray();
        ModelFixtureTests.AssertClose(last.Select(v => (double)v).ToArray(), a, 1e-6, 1e-6, "dense(h)");
    }

    [Fact]
    public void Gru4RecTrainsDownOnATinyTask()
    {
        // Item i is always followed by i+1: a few plain SGD steps must lower the loss (gradients flow end to end).
        using var model = new GRU4Rec(new GRU4RecConfig { NItems = 12, EmbeddingSize = 8, HiddenSize = 8, Dropout = 0f }, seed: 2);
        var seq = Tensor.From(new long[] { 1, 2, 3, 4, 5, 6, 7, 8, 2, 3, 4, 5, 6, 7, 8, 9 }, 2, 8).Persist();
        var targets = Tensor.From(new long[] { 2, 3, 4, 5, 6, 7, 8, 9, 3, 4, 5, 6, 7, 8, 9, 10 }, 2, 8).Persist();
        float first = 0, last = 0;
        for (int step = 0; step < 60; step++)
        {
            using var scope = new TensorScope();
            var loss = model.AllPositions(seq, targets);
            if (step == 0) first = loss.Item();
            last = loss.Item();
            loss.Backward();
            foreach (var p in model.Parameters())
            {
                p.Backend.AddInPlace(p, p.Grad!, -0.5f);
            }
            model.ZeroGrad();
        }
        seq.Dispose();
        targets.Dispose();
        Assert.True(last < 0.5 * first, $"loss went from {first} to {last}");
    }
    [Fact]
    public void Gru4RecConfigJsonRoundTrips()
    {
        var c = new GRU4RecConfig { NItems = 77, EmbeddingSize = 16, HiddenSize = 24, NumLayers = 2, Dropout = 0.25f };
        var json = RecConfigJson.Write(c);
        Assert.Equal("gru4rec", RecConfigJson.ModelKind(json));
        Assert.Equal(c, RecConfigJson.ReadGRU4Rec(json));
        Assert.Equal(new GRU4RecConfig { NItems = 5 }, RecConfigJson.ReadGRU4Rec("{\"n_items\": 5}"));
        Assert.Equal((64, 128, 1, 0.3f), (new GRU4RecConfig().EmbeddingSize, new GRU4RecConfig().HiddenSize, new GRU4RecConfig().NumLayers, new GRU4RecConfig().Dropout));
    }
}
