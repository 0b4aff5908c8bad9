using Mamba4.Ops;
using Mamba4.Tensors;

namespace Mamba4.Tests;

/// <summary>Norms, embedding, causal conv, gate, dropout, concat/split: scalar double references and gradient checks.</summary>
public class LayerOpsTests
{
    [Theory]
    [InlineData(1, 1)]
    [InlineData(3, 7)]
    [InlineData(5, 33)]
    [InlineData(2, 1000)]
    public void LayerNormMatchesDoubleReference(int rows, int d)
    {
        using var scope = new TensorScope();
        var rng = new Random(d);
        var x = GradCheck.Random(rng, 3f, rows, d);
        var w = GradCheck.Random(rng, 1f, d);
        var b = GradCheck.Random(rng, 1f, d);
        var y = F.LayerNorm(x, w, b, 1e-5f).ToFloatArray();
        var xs = x.ToFloatArray(); var ws = w.ToFloatArray(); var bs = b.ToFloatArray();
        for (int r = 0; r < rows; r++)
        {
            double mu = 0, v = 0;
            for (int j = 0; j < d; j++) mu += xs[r * d + j];
            mu /= d;
            for (int j = 0; j < d; j++) v += (xs[r * d + j] - mu) * (xs[r * d + j] - mu);
            v /= d;
            for (int j = 0; j < d; j++)
            {
                double e = (xs[r * d + j] - mu) / Math.Sqrt(v + 1e-5) * ws[j] + bs[j];
                Assert.Equal(e, y[r * d + j], 2e-5 * Math.Max(1, Math.Abs(e)));
            }
        }
    }

    [Theory]
    [InlineData(1, 7)]
    [InlineData(4, 33)]
    public void RmsNormMatchesDoubleReference(int rows, int d)
    {
        using var scope = new TensorScope();
        var rng = new Random(d);
        var x = GradCheck.Random(rng, 3f, rows, d);
        var w = GradCheck.Random(rng, 1f, d);
        var y = F.RmsNorm(x, w, 1e-6f).ToFloatArray();
        var xs = x.ToFloatArray(); var ws = w.ToFloatArray();
        for (int r = 0; r < rows; r++)
        {
            double ms = 0;
            for (int j = 0; j < d; j++) ms += (double)xs[r * d + j] * xs[r * d + j];
            double rs = 1 / Math.Sqrt(ms / d + 1e-6);
            for (int j = 0; j < d; j++) Assert.Equal(xs[r * d + j] * rs * ws[j], y[r * d + j], 2e-5);
        }
    }

    [Fact]
    public void NormGradients()
    {
        var rng = new Random(11);
        using var x = GradCheck.Random(rng, 2f, 2, 3, 9);
        using var w = GradCheck.Random(rng, 1f, 9);
        using var b = GradCheck.Random(rng, 1f, 9);
        GradCheck.Check(t => F.LayerNorm(t[0], t[1], t[2]), [x, w, b], eps: 1e-2);
        GradCheck.Check(t => F.RmsNorm(t[0], t[1]), [x, w], eps: 1e-2);
        // x's other use recorded after the norm, so x already has a gradient when the norm's backward adds its dx to it
        GradCheck.Check(t => F.Add(F.RmsNorm(t[0], t[1]), F.Mul(t[0], t[0])), [x, w], eps: 1e-2);
    }

    [Fact]
    public void EmbeddingGathersRowsAndSkipsPaddingGradient()
    {
        using var scope = new TensorScope();
        var weight = Tensor.From([0f, 0f, 1f, 2f, 3f, 4f, 5f, 6f], 4, 2);
        weight.RequiresGrad = true;
        var ids = Tensor.From([2L, 0L, 2L, 3L], 2, 2);
        var y = F.Embedding(weight, ids, paddingIndex: 0);
        Assert.Equal(new Shape(2, 2, 2), y.Shape);
        Assert.Equal([3f, 4f, 0f, 0f, 3f, 4f, 5f, 6f], y.ToFloatArray());
        var dy = Tensor.From([1f, 2f, 10f, 20f, 3f, 4f, 5f, 6f], 2, 2, 2);
        F.Sum(F.Mul(y, dy)).Backward();
        // row 0 is padding: no gradient; row 2 used twice: sum; row 1 unused.
        Assert.Equal([0f, 0f, 0f, 0f, 4f, 6f, 5f, 6f], weight.Grad!.ToFloatArray());
    }

    [Fact]
    public void EmbeddingRejectsOutOfRangeIdsWithPosition()
    {
        using var scope = new TensorScope();
        var weight = Tensor.Zeros(new Shape(4, 2));
        var ids = Tensor.From([1L, 4L], 2);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => F.Embedding(weight, ids));
        Assert.Contains("id 4 at position 1", e.Message);
    }

    [Theory]
    [InlineData(1, 1, 1, 1, false)]
    [InlineData(2, 7, 3, 4, true)]
    [InlineData(1, 33, 70, 4, true)]
    [InlineData(3, 5, 9, 2, false)]
    public void CausalConvMatchesDirectSum(int batch, int len, int d, int k, bool silu)
    {
        using var scope = new TensorScope();
        var rng = new Random(len * 31 + d);
        var x = GradCheck.Random(rng, 2f, batch, len, d);
        var w = GradCheck.Random(rng, 1f, d, 1, k);
        var bias = GradCheck.Random(rng, 1f, d);
        var y = F.CausalConv1d(x, w, bias, silu).ToFloatArray();
        var xs = x.ToFloatArray(); var ws = w.ToFloatArray(); var bs = bias.ToFloatArray();
        for (int b = 0; b < batch; b++)
            for (int t = 0; t < len; t++)
                for (int c = 0; c < d; c++)
                {
                    double p = bs[c];
                    for (int j = 0; j < k; j++)
                    {
                        int s = t - k + 1 + j;
                        if (s >= 0) p += ws[c * k + j] * xs[(b * len + s) * d + c];
                    }
                    double e = silu ? p / (1 + Math.Exp(-p)) : p;
                    Assert.Equal(e, y[(b * len + t) * d + c], 1e-5);
                }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void CausalConvGradients(bool silu)
    {
        var rng = new Random(5);
        using var x = GradCheck.Random(rng, 1f, 2, 6, 5);
        using var w = GradCheck.Random(rng, 1f, 5, 1, 4);
        using var b = GradCheck.Random(rng, 1f, 5);
        GradCheck.Check(t => F.CausalConv1d(t[0], t[1], t[2], silu), [x, w, b]);
    }

    [Fact]
    public void GateGradients()
    {
        var rng = new Random(6);
        using var y = GradCheck.Random(rng, 2f, 3, 13);
        using var z = GradCheck.Random(rng, 3f, 3, 13);
        GradCheck.Check(t => F.Gate(t[0], t[1]), [y, z]);
    }

    [Fact]
    public void ConcatSplitGradients()
    {
        var rng = new Random(8);
        using var a = GradCheck.Random(rng, 1f, 2, 3, 4);
        using var b = GradCheck.Random(rng, 1f, 2, 3, 2);
        GradCheck.Check(t =>
        {
            var parts = F.SplitLastAxis(F.ConcatLastAxis(t[0], t[1]), 1, 5);
            return F.ConcatLastAxis(F.SiLU(parts[1]), F.Scale(parts[0], 2f));
        }, [a, b]);
    }

    [Fact]
    public void DropoutIsSeededScaledAndDifferentiable()
    {
        using var scope = new TensorScope();
        var x = Tensor.Ones(new Shape(100_000));
        var a = F.Dropout(x, 0.2f, seed: 42).ToFloatArray();
        var b = F.Dropout(x, 0.2f, seed: 42).ToFloatArray();
        var c = F.Dropout(x, 0.2f, seed: 43).ToFloatArray();
        Assert.Equal(a, b);
        Assert.NotEqual(a, c);
        Assert.All(a, v => Assert.True(v == 0f || Math.Abs(v - 1.25f) < 1e-6));
        double kept = a.Count(v => v != 0) / (double)a.Length;
        Assert.InRange(kept, 0.8 - 0.01, 0.8 + 0.01); // 5σ ≈ 0.0063
        Assert.Same(x, F.Dropout(x, 0.2f, seed: 1, training: false));

        var rng = new Random(9);
        using var v = GradCheck.Random(rng, 1f, 4, 8);
        GradCheck.Check(t => F.Dropout(t[0], 0.5f, seed: 3), [v]);
    }
}

public class LinearOpsTests
{
    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(true, true)]
    public void MatMulGradientsAllTransposes(bool transA, bool transB)
    {
        var rng = new Random(transA ? 3 : 5);
        int m = 5, k = 7, n = 3;
        using var a = GradCheck.Random(rng, 1f, transA ? [k, m] : [m, k]);
        using var b = GradCheck.Random(rng, 1f, transB ? [n, k] : [k, n]);
        GradCheck.Check(t => F.MatMul(t[0], t[1], transA, transB), [a, b]);
    }

    [Fact]
    public void LinearGradientsAndShapeError()
    {
        var rng = new Random(12);
        using var x = GradCheck.Random(rng, 1f, 2, 3, 6);
        using var w = GradCheck.Random(rng, 1f, 4, 6);
        using var b = GradCheck.Random(rng, 1f, 4);
        GradCheck.Check(t => F.Linear(t[0], t[1], t[2]), [x, w, b]);
        using var wrong = Tensor.Zeros(new Shape(4, 5));
        var e = Assert.Throws<ArgumentException>(() => F.Linear(x, wrong));
        Assert.Contains("[2, 3, 6]", e.Message);
    }

    // Rows ≤ 4 take the streaming GEMV path (decoding), more rows the packed GEMM.
    [Theory]
    [InlineData(33, 17, 7)]
    [InlineData(1, 1, 1)]
    [InlineData(1, 7, 33)]
    [InlineData(2, 33, 5)]
    [InlineData(3, 1000, 9)]
    [InlineData(4, 40, 1000)]
    [InlineData(5, 33, 7)]
    public void LinearMatchesDoubleReference(int rows, int inFeatures, int outFeatures)
    {
        using var scope = new TensorScope();
        var rng = new Random(13 + rows);
        var x = GradCheck.Random(rng, 1f, rows, inFeatures);
        var w = GradCheck.Random(rng, 1f, outFeatures, inFeatures);
        var b = GradCheck.Random(rng, 1f, outFeatures);
        var y = F.Linear(x, w, b).ToFloatArray();
        var xs = x.ToFloatArray(); var ws = w.ToFloatArray(); var bs = b.ToFloatArray();
        for (int i = 0; i < rows; i++)
            for (int o = 0; o < outFeatures; o++)
            {
                double s = bs[o], mag = Math.Abs(bs[o]);
                for (int j = 0; j < inFeatures; j++) { s += (double)xs[i * inFeatures + j] * ws[o * inFeatures + j]; mag += Math.Abs(xs[i * inFeatures + j] * ws[o * inFeatures + j]); }
                Assert.Equal(s, y[i * outFeatures + o], 1e-6 * mag + 1e-7);
            }
    }
}
