using Mamba4.Autograd;
using Mamba4.Backends.Cpu;
using Mamba4.Ops;
using Mamba4.Tensors;

namespace Mamba4.Tests;

/// <summary>Attention with dropout on the probabilities (SASRec's attn_dropout): against the fused kernel at p = 0,
/// a double reference with the same mask, finite differences, and the expectation over masks.</summary>
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

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void WithoutDropoutTheKernelEqualsTheFusedAttentionForwardAndBackward(bool padding)
    {
        using var scope = new TensorScope();
        var (q, k, v) = Inputs(1);
        var ids = padding ? Tensor.From(Ids, B, L) : null;
        var dy = GradCheck.Random(new Random(2), 1f, B, L, W);
        float[][] Run(Func<Tensor, Tensor, Tensor, Tensor> f)
        {
            foreach (var t in new[] { q, k, v }) { t.RequiresGrad = true; t.Grad?.Dispose(); t.Grad = null; }
            var y = f(q, k, v);
            Reduce.Sum(Elementwise.Mul(y, dy)).Backward();
            return [y.ToFloatArray(), q.Grad!.ToFloatArray(), k.Grad!.ToFloatArray(), v.Grad!.ToFloatArray()];
        }
        var fused = Run((a, b, c) => Attention.Causal(a, b, c, Heads, ids));
        var plain = Run((a, b, c) => AttentionDropout.Forward(a, b, c, Heads, ids, 0f, 123));
        string[] names = ["y", "dq", "dk", "dv"];
        for (int i = 0; i < 4; i++)
            ModelFixtureTests.AssertClose(fused[i].Select(x => (double)x).ToArray(), plain[i], 1e-4, 1e-5, names[i]);
    }

    [Fact]
    public void ForwardMatchesADoubleReferenceWithTheSameMask()
    {
        const float p = 0.4f;
        const ulong seed = 77;
        using var scope = new TensorScope();
        var (q, k, v) = Inputs(3);
        var y = AttentionDropout.Forward(q, k, v, Heads, Tensor.From(Ids, B, L), p, seed).ToFloatArray();
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
                        s[j] = dot / Math.Sqrt(D) + (j <= i && Ids[b * L + j] != 0 ? 0 : -10000.0);
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
    [InlineData(true)]
    [InlineData(false)]
    public void GradientsMatchFiniteDifferences(bool padding)
    {
        var (q, k, v) = Inputs(5);
        using var ids = padding ? Tensor.From(Ids, B, L) : null;
        GradCheck.Check(t => AttentionDropout.Forward(t[0], t[1], t[2], Heads, ids, 0.3f, 99), [q, k, v]);
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
        var exact = Attention.Causal(q, k, v, Heads, ids).ToFloatArray();
        var mean = new double[exact.Length];
        const int draws = 800;
        for (int s = 0; s < draws; s++)
        {
            var y = AttentionDropout.Forward(q, k, v, Heads, ids, 0.5f, (ulong)s * 7919 + 1).ToFloatArray();
            for (int i = 0; i < y.Length; i++) mean[i] += y[i] / draws;
        }
        double worst = exact.Select((e, i) => Math.Abs(e - mean[i])).Max();
        Assert.True(worst < 0.15, $"mean over {draws} masks differs from the exact attention by {worst:G3}");
        // Different seeds give different outputs; the same seed the same.
        var a = AttentionDropout.Forward(q, k, v, Heads, ids, 0.5f, 1).ToFloatArray();
        Assert.Equal(a, AttentionDropout.Forward(q, k, v, Heads, ids, 0.5f, 1).ToFloatArray());
        Assert.NotEqual(a, AttentionDropout.Forward(q, k, v, Heads, ids, 0.5f, 2).ToFloatArray());
    }

    [Fact]
    public void OutsideTrainingOrAtZeroItIsTheFusedAttention()
    {
        using var scope = new TensorScope();
        var (q, k, v) = Inputs(9);
        var ids = Tensor.From(Ids, B, L);
        var exact = Attention.Causal(q, k, v, Heads, ids).ToFloatArray();
        Assert.Equal(exact, AttentionDropout.Causal(q, k, v, Heads, ids, 0.5f, 3, training: false).ToFloatArray());
        Assert.Equal(exact, AttentionDropout.Causal(q, k, v, Heads, ids, 0f, 3).ToFloatArray());
        Assert.NotEqual(exact, AttentionDropout.Causal(q, k, v, Heads, ids, 0.5f, 3).ToFloatArray());
        Assert.Throws<ArgumentOutOfRangeException>(() => AttentionDropout.Causal(q, k, v, Heads, ids, 1f, 3));
    }
}
