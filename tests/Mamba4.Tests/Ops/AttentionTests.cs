using Mamba4.Autograd;
using Mamba4.Backends;
using Mamba4.Ops;
using Mamba4.Tensors;

namespace Mamba4.Tests;

public class AttentionTests
{
    /// <summary>Causal attention, RecBole's padding mask when ids are given.</summary>
    internal static Tensor Causal(Tensor q, Tensor k, Tensor v, int heads, Tensor? keyPadding = null) =>
        F.Attention(q, k, v, new AttentionSpec(heads, KeyPadding: keyPadding));

    /// <summary>
    /// Naive double-precision reference: the explicit [L, L] score matrix per (batch, head), the mask
    /// (causal exclusion, or RecBole's additive −10000 when ids are given), softmax, weighted sum.
    /// </summary>
    internal static double[] Reference(double[] q, double[] k, double[] v, int b, int l, int heads, int d, long[]? ids, bool causal = true)
    {
        int w = heads * d;
        var y = new double[b * l * w];
        var s = new double[l, l];
        for (int bb = 0; bb < b; bb++)
            for (int h = 0; h < heads; h++)
            {
                for (int i = 0; i < l; i++)
                    for (int j = 0; j < l; j++)
                    {
                        double dot = 0;
                        for (int c = 0; c < d; c++) dot += q[(bb * l + i) * w + h * d + c] * k[(bb * l + j) * w + h * d + c];
                        dot /= Math.Sqrt(d);
                        if (!causal) s[i, j] = dot + (ids is null || ids[bb * l + j] != 0 ? 0 : -10000.0);   // RecBole's bidirectional mask
                        else if (ids is null) s[i, j] = j <= i ? dot : double.NegativeInfinity;
                        else s[i, j] = dot + (j <= i && ids[bb * l + j] != 0 ? 0 : -10000.0);
                    }
                for (int i = 0; i < l; i++)
                {
                    double m = double.NegativeInfinity;
                    for (int j = 0; j < l; j++) m = Math.Max(m, s[i, j]);
                    double z = 0;
                    for (int j = 0; j < l; j++) z += Math.Exp(s[i, j] - m);
                    for (int j = 0; j < l; j++)
                    {
                        double p = Math.Exp(s[i, j] - m) / z;
                        for (int c = 0; c < d; c++) y[(bb * l + i) * w + h * d + c] += p * v[(bb * l + j) * w + h * d + c];
                    }
                }
            }
        return y;
    }

    /// <summary>Ids for a batch of 3: right-padded (RecBole's layout), first key padding, scattered padding.</summary>
    private static long[] Ids(Random rng, int l)
    {
        var ids = new long[3 * l];
        int len = l / 2 + 1;
        for (int j = 0; j < l; j++)
        {
            ids[j] = j < len ? rng.Next(1, 100) : 0;
            ids[l + j] = j < Math.Max(1, l / 3) ? 0 : rng.Next(1, 100);
            ids[2 * l + j] = j == 0 || rng.Next(3) == 0 ? 0 : rng.Next(1, 100);
        }
        return ids;
    }

    private static double[] Doubles(Tensor t) => t.ToFloatArray().Select(f => (double)f).ToArray();

    public static TheoryData<int, int, int, bool> Sizes()
    {
        var data = new TheoryData<int, int, int, bool>();
        foreach (var l in new[] { 1, 7, 33 })
            foreach (var heads in new[] { 1, 2, 3 })
                foreach (var d in new[] { 1, 5, 16 })
                    foreach (var padded in new[] { false, true })
                        data.Add(l, heads, d, padded);
        return data;
    }

    [Theory]
    [MemberData(nameof(Sizes))]
    public void ForwardMatchesNaiveDoubleReference(int l, int heads, int d, bool padded)
    {
        using var scope = new TensorScope();
        var rng = new Random(l * 100 + heads * 10 + d);
        const int b = 3;
        var q = GradCheck.Random(rng, 1.5f, b, l, heads * d);
        var k = GradCheck.Random(rng, 1.5f, b, l, heads * d);
        var v = GradCheck.Random(rng, 1f, b, l, heads * d);
        var ids = padded ? Ids(rng, l) : null;
        var y = Causal(q, k, v, heads, ids is null ? null : Tensor.From(ids, b, l)).ToFloatArray();
        var expected = Reference(Doubles(q), Doubles(k), Doubles(v), b, l, heads, d, ids);
        for (int i = 0; i < y.Length; i++)
            Assert.True(Math.Abs(y[i] - expected[i]) <= 2e-6 + 2e-6 * Math.Abs(expected[i]), $"y[{i}] = {y[i]}, reference {expected[i]}");
    }

    [Fact]
    public void FullyMaskedQueryAttendsToEveryKeyLikeRecBole()
    {
        // ids [0, 3, 0, 4]: query 0 sees only padding, so every key (future ones too) gets the same −10000
        // and the row is a softmax over all four keys; with k = 0 that is the plain mean of v.
        using var scope = new TensorScope();
        var q = Tensor.From([1f, 2f, 3f, 4f], 1, 4, 1);
        var k = Tensor.Zeros(new Shape(1, 4, 1));
        var v = Tensor.From([1f, 10f, 100f, 1000f], 1, 4, 1);
        var y = Causal(q, k, v, 1, Tensor.From([0L, 3L, 0L, 4L], 1, 4)).ToFloatArray();
        Assert.Equal(1111f / 4, y[0], 1e-3);
        Assert.Equal(10f, y[1], 1e-5);   // sees key 1 only
        Assert.Equal(10f, y[2], 1e-5);   // key 2 is padding
        Assert.Equal(505f, y[3], 1e-3);  // keys 1 and 3
        // Without ids: plain causal.
        var yc = Causal(q, k, v, 1).ToFloatArray();
        Assert.Equal([1f, 5.5f, 37f, 277.75f], yc);
    }

    [Fact]
    public void ScoresAsLargeAsTheMaskFollowRecBoleLiterally()
    {
        // q·k/√D = ±5000: the masked future key 1 scores 5000 − 10000 = −5000, the same as the visible key 0,
        // so RecBole's additive mask gives both the same weight (−inf masking would not).
        using var scope = new TensorScope();
        var q = Tensor.From([100f, 100f], 1, 2, 1);
        var k = Tensor.From([-50f, 50f], 1, 2, 1);
        var v = Tensor.From([2f, 4f], 1, 2, 1);
        var ids = new long[] { 1, 1 };
        var y = Causal(q, k, v, 1, Tensor.From(ids, 1, 2)).ToFloatArray();
        var expected = Reference(Doubles(q), Doubles(k), Doubles(v), 1, 2, 1, 1, ids);
        Assert.Equal(3.0, expected[0], 1e-9);
        Assert.Equal(expected[0], y[0], 1e-4);
        Assert.Equal(expected[1], y[1], 1e-4);

        // The gradient through the literal path: y0 = (2e^{s00} + 4e^{s01})/(…) with p00 = p01 = ½, y1 = v1 (p11 = 1):
        // ∂Σy/∂q0 = p00 p01 (v1 − v0)(k1 − k0) = 50, ∂/∂k = ∓p00 p01 (v1 − v0) q0 = ∓50, ∂/∂v = (½, ½ + 1).
        // Scores of ±5000 leave lse with float32 steps of 5e-4, hence the relative tolerance.
        foreach (var t in new[] { q, k, v }) t.RequiresGrad = true;
        F.Sum(Causal(q, k, v, 1, Tensor.From(ids, 1, 2))).Backward();
        double[][] grads = [[50, 0], [-50, 50], [0.5, 1.5]];
        var actual = new[] { q, k, v }.Select(t => t.Grad!.ToFloatArray()).ToArray();
        for (int a = 0; a < 3; a++)
            for (int i = 0; i < 2; i++)
                Assert.Equal(grads[a][i], actual[a][i], 1e-5 + 2e-3 * Math.Abs(grads[a][i]));
    }

    [Fact]
    public void LargeScoresWithAClearWinnerStillSkipMaskedKeys()
    {
        // |q|·|k|/√D = 5000 rules out the cheap bound, so the kernel compares against the best visible score:
        // masked keys sit 10000 below it and must get zero weight, as in RecBole.
        using var scope = new TensorScope();
        var q = Tensor.From([100f, 100f, 100f], 1, 3, 1);
        var k = Tensor.From([50f, -50f, 50f], 1, 3, 1);
        var v = Tensor.From([2f, 4f, 8f], 1, 3, 1);
        var ids = new long[] { 1, 0, 1 };
        var y = Causal(q, k, v, 1, Tensor.From(ids, 1, 3)).ToFloatArray();
        var expected = Reference(Doubles(q), Doubles(k), Doubles(v), 1, 3, 1, 1, ids);
        Assert.Equal([2.0, 2.0, 5.0], expected.Select(e => Math.Round(e, 9)));
        for (int i = 0; i < 3; i++) Assert.Equal(expected[i], y[i], 1e-5);
    }

    [Theory]
    [InlineData(1, 2, 5)]
    [InlineData(7, 2, 16)]
    [InlineData(33, 3, 5)]
    public void BidirectionalWithPaddingMatchesNaiveDoubleReference(int l, int heads, int d)
    {
        // BERT4Rec's encoder: every query sees every real key, padding keys get −10000 (a row of only padding: none).
        using var scope = new TensorScope();
        var rng = new Random(l * 100 + heads * 10 + d + 7);
        const int b = 3;
        var q = GradCheck.Random(rng, 1.5f, b, l, heads * d);
        var k = GradCheck.Random(rng, 1.5f, b, l, heads * d);
        var v = GradCheck.Random(rng, 1f, b, l, heads * d);
        var ids = Ids(rng, l);
        var y = F.Attention(q, k, v, new AttentionSpec(heads, Causal: false, KeyPadding: Tensor.From(ids, b, l))).ToFloatArray();
        var expected = Reference(Doubles(q), Doubles(k), Doubles(v), b, l, heads, d, ids, causal: false);
        for (int i = 0; i < y.Length; i++)
            Assert.True(Math.Abs(y[i] - expected[i]) <= 2e-6 + 2e-6 * Math.Abs(expected[i]), $"y[{i}] = {y[i]}, reference {expected[i]}");
    }

    [Theory]
    [InlineData(false, true)]
    [InlineData(true, true)]
    [InlineData(true, false)]
    public void GradientsMatchDoubleFiniteDifferencesOfTheReference(bool padded, bool causal)
    {
        // Tight check: the kernel's gradients against central differences of the double reference.
        using var scope = new TensorScope();
        var rng = new Random(padded ? 21 : 20);
        const int l = 6, heads = 2, d = 9;
        const int b = 3, w = heads * d;
        var inputs = new[] { GradCheck.Random(rng, 1.5f, b, l, w), GradCheck.Random(rng, 1.5f, b, l, w), GradCheck.Random(rng, 1f, b, l, w) };
        var ids = padded ? Ids(rng, l) : null;
        var weights = Enumerable.Range(0, b * l * w).Select(_ => rng.NextDouble() * 2 - 1).ToArray();
        foreach (var t in inputs) t.RequiresGrad = true;
        var y = F.Attention(inputs[0], inputs[1], inputs[2], new AttentionSpec(heads, causal, ids is null ? null : Tensor.From(ids, b, l)));
        var loss = F.Sum(F.Mul(y, Tensor.From(weights.Select(x => (float)x).ToArray(), b, l, w)));
        loss.Backward();

        var x = inputs.Select(Doubles).ToArray();
        double Loss()
        {
            var r = Reference(x[0], x[1], x[2], b, l, heads, d, ids, causal);
            double s = 0;
            for (int i = 0; i < r.Length; i++) s += weights[i] * r[i];
            return s;
        }
        const double eps = 1e-5;
        for (int a = 0; a < 3; a++)
        {
            var g = inputs[a].Grad!.ToFloatArray();
            for (int i = 0; i < g.Length; i++)
            {
                double orig = x[a][i];
                x[a][i] = orig + eps;
                double plus = Loss();
                x[a][i] = orig - eps;
                double minus = Loss();
                x[a][i] = orig;
                double fd = (plus - minus) / (2 * eps);
                Assert.True(Math.Abs(g[i] - fd) <= 2e-5 + 1e-4 * Math.Abs(fd), $"input {"qkv"[a]} element {i}: kernel {g[i]}, reference {fd}");
            }
        }
    }

    [Theory]
    [InlineData(2, 7, 2, 5, false)]
    [InlineData(3, 5, 1, 16, true)]
    [InlineData(3, 6, 3, 3, true)]
    public void GradCheckQKV(int b, int l, int heads, int d, bool padded)
    {
        var rng = new Random(b * 1000 + l * 100 + heads * 10 + d);
        using var q = GradCheck.Random(rng, 1f, b, l, heads * d);
        using var k = GradCheck.Random(rng, 1f, b, l, heads * d);
        using var v = GradCheck.Random(rng, 1f, b, l, heads * d);
        var ids = padded ? Ids(rng, l).Take(b * l).ToArray() : null;
        using var pad = ids is null ? null : Tensor.From(ids, b, l);
        GradCheck.Check(t => Causal(t[0], t[1], t[2], heads, pad), [q, k, v]);
    }

    [Fact]
    public void NoGradRecordsNothing()
    {
        using var scope = new TensorScope();
        var q = Tensor.Zeros(new Shape(1, 3, 4));
        q.RequiresGrad = true;
        int before = Tape.Count;
        using (GradMode.NoGrad()) Causal(q, q, q, 2);
        Assert.Equal(before, Tape.Count);
    }

    [Fact]
    public void BadShapesNameArgumentExpectedAndActual()
    {
        using var scope = new TensorScope();
        var q = Tensor.Zeros(new Shape(2, 7, 6));
        var ex = Assert.Throws<ArgumentException>(() => Causal(q, Tensor.Zeros(new Shape(2, 6, 6)), q, 2));
        Assert.Contains("k must have shape [2, 7, 6], got [2, 6, 6]", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => Causal(q, q, Tensor.Zeros(new Shape(2, 7, 3)), 2));
        Assert.Contains("v must have shape [2, 7, 6], got [2, 7, 3]", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => Causal(q, q, q, 4));
        Assert.Contains("4 heads", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => Causal(Tensor.Zeros(new Shape(7, 6)), q, q, 2));
        Assert.Contains("q must have rank 3", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => Causal(q, q, q, 2, Tensor.Zeros(new Shape(2, 7), DType.I32)));
        Assert.Contains("keyPadding must be I64", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => Causal(q, q, q, 2, Tensor.Zeros(new Shape(2, 6), DType.I64)));
        Assert.Contains("keyPadding must have shape [2, 7], got [2, 6]", ex.Message);
    }
}
