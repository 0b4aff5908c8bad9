using Mamba4.Backends;
using Mamba4.Models;
using Mamba4.Nn;
using Mamba4.Ops;
using Mamba4.Tasks.Recommendation;
using Mamba4.Tensors;

namespace Mamba4.Tests;

/// <summary>
/// `--attention naive`: F.AttentionMaterialized (RecBole's materialised [L × L] attention from existing ops) gives the fused
/// F.Attention's outputs and gradients, and F.BatchedMatMul (its building block) the products and gradients of a float64 loop.
/// </summary>
public class AttentionMaterializedTests
{
    /// <summary>Right-padded ids (RecBole's layout) for batch 0, scattered padding for batch 1.</summary>
    private static long[] Ids(Random rng, int l) =>
        Enumerable.Range(0, 2 * l).Select(i => i < l ? (i < l / 2 + 1 ? rng.Next(1, 50) : 0L) : (i % 3 == 1 ? 0L : rng.Next(1, 50))).ToArray();

    private static (float[] Y, float[][] Grads) Run(Func<Tensor, Tensor, Tensor, Tensor> attention, Tensor[] inputs, Tensor weights)
    {
        using var scope = new TensorScope();
        var x = inputs.Select(t => Tensor.From(t.ToFloatArray(), t.Shape.ToArray()).To(t.Device)).ToArray();   // fresh leaves: no gradient carried over
        foreach (var t in x) t.RequiresGrad = true;
        var y = attention(x[0], x[1], x[2]);
        F.Sum(F.Mul(y, weights)).Backward();
        return (y.ToFloatArray(), x.Select(t => t.Grad!.ToFloatArray()).ToArray());
    }

    private static void Close(float[] expected, float[] actual, double tol, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        double scale = Math.Max(1e-3, expected.Max(x => Math.Abs((double)x)));
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= tol * scale, $"{what}[{i}]: fused {expected[i]}, materialised {actual[i]}");
    }

    [Theory]
    [InlineData(true, true, 2)]
    [InlineData(true, false, 1)]
    [InlineData(false, true, 2)]
    [InlineData(false, false, 3)]
    public void MaterializedAttentionEqualsTheFusedOpForwardAndBackward(bool causal, bool padded, int heads)
    {
        var rng = new Random(heads * 10 + (causal ? 1 : 0) + (padded ? 2 : 0));
        const int b = 2, l = 9, d = 4;
        using var scope = new TensorScope();
        var inputs = new[] { GradCheck.Random(rng, 1.5f, b, l, heads * d), GradCheck.Random(rng, 1.5f, b, l, heads * d), GradCheck.Random(rng, 1f, b, l, heads * d) };
        var weights = GradCheck.Random(rng, 1f, b, l, heads * d);
        var pad = padded ? Tensor.From(Ids(rng, l), b, l) : null;
        var spec = new AttentionSpec(heads, causal, KeyPadding: pad);
        var fused = Run((q, k, v) => F.Attention(q, k, v, spec), inputs, weights);
        var naive = Run((q, k, v) => F.AttentionMaterialized(q, k, v, spec, training: true), inputs, weights);
        // Independent math too: the float64 loop of AttentionTests (explicit scores, mask, softmax).
        var reference = AttentionTests.Reference(Doubles(inputs[0]), Doubles(inputs[1]), Doubles(inputs[2]), b, l, heads, d, pad?.ToInt64Array(), causal);
        Close(reference.Select(x => (float)x).ToArray(), naive.Y, 1e-5, "y vs float64");
        Close(fused.Y, naive.Y, 1e-5, "y");
        for (int i = 0; i < 3; i++) Close(fused.Grads[i], naive.Grads[i], 1e-5, "d" + "qkv"[i]);
    }

    /// <summary>On the GPU (cuBLAS strided-batched GEMMs): the materialised attention's output and gradients equal the CPU's fused op's.</summary>
    [Theory]
    [Trait("Category", "Cuda")]
    [InlineData(true)]
    [InlineData(false)]
    public void MaterializedAttentionOnTheGpuEqualsTheFusedOpOnTheCpu(bool causal)
    {
        _ = CudaTest.Gpu;
        var rng = new Random(causal ? 11 : 12);
        const int b = 2, l = 33, heads = 2, d = 8;
        using var scope = new TensorScope();
        var inputs = new[] { GradCheck.Random(rng, 1.5f, b, l, heads * d), GradCheck.Random(rng, 1.5f, b, l, heads * d), GradCheck.Random(rng, 1f, b, l, heads * d) };
        var weights = GradCheck.Random(rng, 1f, b, l, heads * d);
        var pad = Tensor.From(Ids(rng, l), b, l);
        var cpu = Run((q, k, v) => F.Attention(q, k, v, new AttentionSpec(heads, causal, KeyPadding: pad)), inputs, weights);
        var gpuInputs = inputs.Select(t => t.To(CudaTest.Cuda)).ToArray();
        var gpu = Run((q, k, v) => F.AttentionMaterialized(q, k, v, new AttentionSpec(heads, causal, KeyPadding: pad.To(CudaTest.Cuda)), training: true),
            gpuInputs, weights.To(CudaTest.Cuda));
        Close(cpu.Y, gpu.Y, 1e-5, "y");
        for (int i = 0; i < 3; i++) Close(cpu.Grads[i], gpu.Grads[i], 1e-4, "d" + "qkv"[i]);
    }

    private static double[] Doubles(Tensor t) => t.ToFloatArray().Select(x => (double)x).ToArray();

    [Theory]
    [InlineData(false, false)]
    [InlineData(false, true)]
    [InlineData(true, false)]
    [InlineData(true, true)]
    public void BatchedMatMulEqualsAFloat64LoopAndItsGradientsFiniteDifferences(bool transA, bool transB)
    {
        var rng = new Random(3 + (transA ? 1 : 0) + (transB ? 2 : 0));
        const int batch = 3, m = 4, k = 5, n = 2;
        using var scope = new TensorScope();
        var a = GradCheck.Random(rng, 1f, transA ? [batch, k, m] : [batch, m, k]);
        var b = GradCheck.Random(rng, 1f, transB ? [batch, n, k] : [batch, k, n]);
        var c = F.BatchedMatMul(a, b, transA, transB).ToFloatArray();
        float[] av = a.ToFloatArray(), bv = b.ToFloatArray();
        for (int t = 0; t < batch; t++)
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++)
                {
                    double sum = 0;
                    for (int p = 0; p < k; p++)
                        sum += (double)av[t * m * k + (transA ? p * m + i : i * k + p)] * bv[t * k * n + (transB ? j * k + p : p * n + j)];
                    Assert.Equal(sum, c[(t * m + i) * n + j], 5);
                }
        GradCheck.Check(x => F.BatchedMatMul(x[0], x[1], transA, transB), [a, b]);
    }

    [Fact]
    public void BatchedMatMulRefusesDifferentBatches()
    {
        using var scope = new TensorScope();
        var e = Assert.Throws<ArgumentException>(() => F.BatchedMatMul(Tensor.Zeros(new Shape(2, 3, 4)), Tensor.Zeros(new Shape(3, 4, 5))));
        Assert.Contains("batch", e.Message);
    }

    /// <summary>A whole model: SASRec and BERT4Rec with naive attention give the fused models' loss and every parameter's gradient
    /// (same seed, hidden dropout on — its masks are the same — attention dropout off, whose masks are drawn differently).</summary>
    [Theory]
    [InlineData("sasrec")]
    [InlineData("bert4rec")]
    public void NaiveAttentionModelsTrainLikeTheFusedOnes(string kind)
    {
        var rng = new Random(5);
        const int b = 3, l = 8, items = 20;
        var seq = Enumerable.Range(0, b * l).Select(i => i % l < l - i / l ? (long)rng.Next(1, items) : 0L).ToArray();   // right-padded, lengths 8, 7, 6
        var targets = seq.Select((x, i) => x == 0 || (i + 1) % l == 0 || seq[i + 1] == 0 ? -100L : seq[i + 1]).ToArray();
        (double Loss, Dictionary<string, float[]> Grads) Train(bool naive)
        {
            using var scope = new TensorScope();
            var model = kind == "sasrec"
                ? (ISequentialRecommender)new SASRec(new SASRecConfig { NItems = items, MaxSeqLength = l, HiddenDropout = 0.3f, AttnDropout = 0f, NaiveAttention = naive }, seed: 2)
                : new BERT4Rec(new BERT4RecConfig { NItems = items, MaxSeqLength = l, HiddenDropout = 0.3f, AttnDropout = 0f, NaiveAttention = naive }, seed: 2);
            using var module = (Module)model;
            module.Train();
            var loss = RecExperiment.AllPositionsLoss(model, Tensor.From(seq, b, l), Tensor.From(targets, b, l)).Loss;
            loss.Backward();
            return (loss.ToFloatArray()[0], module.NamedParameters().ToDictionary(p => p.Name, p => p.Tensor.Grad?.ToFloatArray() ?? []));
        }
        var fused = Train(naive: false);
        var naive = Train(naive: true);
        Assert.Equal(fused.Loss, naive.Loss, 5);
        Assert.Equal(fused.Grads.Keys, naive.Grads.Keys);
        foreach (var (name, g) in fused.Grads) Close(g, naive.Grads[name], 1e-4, name);
    }

    [Fact]
    public void AttentionOptionIsCheckedAndOnlyForTheTransformers()
    {
        Assert.Contains("--attention", Assert.Throws<ArgumentException>(() => new RecModelOptions { Kind = "sasrec", Attention = "flash" }.Validate()).Message);
        Assert.Contains("sasrec and bert4rec only", Assert.Throws<ArgumentException>(() => new RecModelOptions { Kind = "mamba4rec", Attention = "naive" }.Validate()).Message);
        var sas = (SASRec)RecModels.Create(new RecModelOptions { Kind = "sasrec", Attention = "naive" }, 10, seed: 1);
        using (sas) Assert.True(sas.Encoder.Layers.Items.All(layer => layer.MultiHeadAttention.Naive));
    }
}
