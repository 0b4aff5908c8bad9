using Mamba4.Autograd;
using Mamba4.Backends;
using Mamba4.Backends.Cpu;
using Mamba4.Ops;
using Mamba4.Tensors;

namespace Mamba4.Tests;

/// <summary>Attention with dropout on the probabilities (SASRec's attn_dropout; AttentionSpec.DropoutP): against a double
/// reference with the same mask (causal with RecBole's padding, and non-causal), finite differences, the expectation over
/// masks, and the spec's checks.</summary>
public class AttentionDropoutTests
{
    private const int B = 3, L = 7, Heads = 2, D = 4, W = Heads * D;

    /// <summary>Right padding, a row whose first keys are padding (its first queries see no real key), scattered padding.</summary>
    private static readonly long[] Ids =
    [
        5, 9, 2, 7, 0, 0, 0,
        0, 0, 3, 4, 8, 1, 6,
        0, 4, 0, 2, 2, 0, 9,
    ];

    private static (Tensor Q, Tensor K, Tensor V) Inputs(int seed)
    {
        var rng = new Random(seed);
        return (GradCheck.Random(rng, 1f, B, L, W), GradCheck.Random(rng, 1f, B, L, W), GradCheck.Random(rng, 1f, B, L, W));
    }

    private static Tensor Dropped(Tensor q, Tensor k, Tensor v, Tensor? ids, float p, ulong seed, bool causal = true) =>
        F.Attention(q, k, v, new AttentionSpec(Heads, causal, ids, p, seed));

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void ForwardMatchesADoubleReferenceWithTheSameMask(bool causal)
    {
        const float p = 0.4f;
        const ulong seed = 77;
        using var scope = new TensorScope();
        var (q, k, v) = Inputs(3);
        var y = Dropped(q, k, v, causal ? Tensor.From(Ids, B, L) : null, p, seed, causal).ToFloatArray();
        double[] qd = q.ToDoubleArray(), kd = k.ToDoubleArray(), vd = v.ToDoubleArray();
        ulong threshold = (ulong)(p * 18446744073709551616.0);
        var expected = new double[B * L * W];
        int dropped = 0, total = 0;
        for (int b = 0; b < B; b++)
            for (int h = 0; h < Heads; h++)
                for (int i = 0; i < L; i++)
                {
                    var s = new double[L];
                    for (int j = 0; j < L; j++)
                    {
                        double dot = 0;
                        for (int c = 0; c < D; c++) dot += qd[(b * L + i) * W + h * D + c] * kd[(b * L + j) * W + h * D + c];
                        s[j] = dot / Math.Sqrt(D) + (!causal || (j <= i && Ids[b * L + j] != 0) ? 0 : -10000.0);
                    }
                    double m = s.Max(), z = s.Sum(x => Math.Exp(x - m));
                    for (int j = 0; j < L; j++)
                    {
                        ulong index = ((ulong)(b * Heads + h) * L + (ulong)i) * L + (ulong)j;
                        total++;
                        if (CpuBackend.SplitMix64(seed, index) < threshold) { dropped++; continue; }
                        double a = Math.Exp(s[j] - m) / z / (1 - p);
                        for (int c = 0; c < D; c++) expected[(b * L + i) * W + h * D + c] += a * vd[(b * L + j) * W + h * D + c];
                    }
                }
        ModelFixtureTests.AssertClose(expected, y, 1e-5, 1e-6, "y");
        Assert.InRange(dropped / (double)total, 0.3, 0.5);
    }

    [Theory]
    [InlineData(true, true)]
    [InlineData(true, false)]
    [InlineData(false, false)]
    public void GradientsMatchFiniteDifferences(bool causal, bool padding)
    {
        var (q, k, v) = Inputs(5);
        using var ids = padding ? Tensor.From(Ids, B, L) : null;
        GradCheck.Check(t => Dropped(t[0], t[1], t[2], ids, 0.3f, 99, causal), [q, k, v]);
        q.Dispose();
        k.Dispose();
        v.Dispose();
    }

    [Fact]
    public void AveragedOverMasksItIsTheAttentionWithoutDropout()
    {
        using var scope = new TensorScope();
        using var _ = GradMode.NoGrad();
        var (q, k, v) = Inputs(7);
        var ids = Tensor.From(Ids, B, L);
        var exact = Dropped(q, k, v, ids, 0f, 0).ToFloatArray();
        var mean = new double[exact.Length];
        const int draws = 800;
        for (int s = 0; s < draws; s++)
        {
            var y = Dropped(q, k, v, ids, 0.5f, (ulong)s * 7919 + 1).ToFloatArray();
            for (int i = 0; i < y.Length; i++) mean[i] += y[i] / draws;
        }
        double worst = exact.Select((e, i) => Math.Abs(e - mean[i])).Max();
        Assert.True(worst < 0.15, $"mean over {draws} masks differs from the exact attention by {worst:G3}");
        // Different seeds give different outputs; the same seed the same.
        var a = Dropped(q, k, v, ids, 0.5f, 1).ToFloatArray();
        Assert.Equal(a, Dropped(q, k, v, ids, 0.5f, 1).ToFloatArray());
        Assert.NotEqual(a, Dropped(q, k, v, ids, 0.5f, 2).ToFloatArray());
    }

    [Fact]
    public void TheLogSumExpIsThatOfTheScoresBeforeDropout()
    {
        // The backward of every backend reads the forward's lse as the plain softmax's (the CUDA backward no longer
        // recomputes it for dropout): dropping probabilities must not change it.
        using var scope = new TensorScope();
        var (q, k, v) = Inputs(11);
        var ids = Tensor.From(Ids, B, L);
        float[] Lse(float p)
        {
            var y = Tensor.Empty(q.Shape);
            var lse = Tensor.Empty(new Shape(B, Heads, L));
            CpuBackend.Instance.AttentionForward(new AttentionSpec(Heads, KeyPadding: ids, DropoutP: p, Seed: 5), q, k, v, y, lse);
            return lse.ToFloatArray();
        }
        Assert.Equal(Lse(0f), Lse(0.5f));
    }

    [Fact]
    public void TheSpecIsCheckedWithClearMessages()
    {
        using var scope = new TensorScope();
        var (q, k, v) = Inputs(9);
        var ids = Tensor.From(Ids, B, L);
        foreach (var p in new[] { 1f, -0.1f, float.NaN })
        {
            var e = Assert.Throws<ArgumentOutOfRangeException>(() => Dropped(q, k, v, ids, p, 3));
            Assert.Contains("dropout p must be in [0, 1)", e.Message);
        }
        var heads = Assert.Throws<ArgumentException>(() => F.Attention(q, k, v, new AttentionSpec(0)));
        Assert.Contains("heads must be at least 1, got 0", heads.Message);
    }
}
