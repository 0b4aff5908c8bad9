using Mamba4.Autograd;
using Mamba4.Backends.Cpu;
using Mamba4.IO;
using Mamba4.Models;
using Mamba4.Ops;
using Mamba4.Tensors;

namespace Mamba4.Tests;

/// <summary>
/// The CPU decoding step's fast paths: the scan step in blocks of 8 channels against a float64 loop written here, the
/// same outputs whether the work is forked across threads or not (scan step, F32 and narrow matrix-vector products), and
/// the mixer's cached A = −exp(A_log) following changes of A_log.
/// </summary>
[Collection(EngineSettingsCollection.Name)]
public class DecodeStepTests
{
    [Theory]
    [InlineData(2, 13, 16, true, true, true)]    // a channel tail (13 = 8 + 5), selective B/C, softplus, gate
    [InlineData(1, 20, 4, false, true, false)]   // time-invariant B/C [D, N], no gate, N below one vector
    [InlineData(3, 8, 16, true, false, true)]    // Δ used as it is (no softplus), no Δ bias
    public void ScanStepMatchesFloat64Loop(int batch, int dim, int n, bool selective, bool softplus, bool gate)
    {
        var rng = new Random(batch * 100 + dim);
        float[] U(int count, double lo, double hi) => Enumerable.Range(0, count).Select(_ => (float)(lo + (hi - lo) * rng.NextDouble())).ToArray();
        int rows = selective ? batch : dim;
        var a = U(dim * n, -4, -0.2);
        var d = U(dim, -1, 1);
        var bias = softplus ? U(dim, -0.5, 0.5) : null;
        var h64 = new double[batch * dim * n];
        using var _ = GradMode.NoGrad();
        using var state = Tensor.Zeros(new Shape(batch, dim, n)).Persist();
        using var aT = Tensor.From(a, dim, n).Persist();
        using var dT = Tensor.From(d, dim).Persist();
        using var biasT = bias is null ? null : Tensor.From(bias, dim).Persist();
        for (int step = 0; step < 3; step++)
        {
            using var scope = new TensorScope();
            var u = U(batch * dim, -1, 1);
            var delta = softplus ? U(batch * dim, -3, 0.5) : U(batch * dim, 0.01, 0.5);
            var b = U(rows * n, -1, 1);
            var c = U(rows * n, -1, 1);
            var z = gate ? U(batch * dim, -2, 2) : null;
            var y = F.SelectiveScanStep(Tensor.From(u, batch, dim), Tensor.From(delta, batch, dim), aT, Tensor.From(b, rows, n), Tensor.From(c, rows, n),
                state, selective, dT, z is null ? null : Tensor.From(z, batch, dim), biasT, softplus).ToFloatArray();
            for (int s = 0; s < batch; s++)
                for (int ch = 0; ch < dim; ch++)
                {
                    int i = s * dim + ch, bc = selective ? s * n : ch * n;
                    double raw = delta[i] + (bias?[ch] ?? 0), dt = softplus ? Math.Log(1 + Math.Exp(raw)) : raw;
                    double acc = d[ch] * u[i], magnitude = Math.Abs(acc);
                    for (int j = 0; j < n; j++)
                    {
                        ref double h = ref h64[i * n + j];
                        h = Math.Exp(dt * a[ch * n + j]) * h + dt * b[bc + j] * u[i];
                        acc += c[bc + j] * h;
                        magnitude += Math.Abs(c[bc + j] * h);
                    }
                    if (z is not null)
                    {
                        double silu = z[i] / (1 + Math.Exp(-z[i]));
                        acc *= silu;
                        magnitude *= Math.Abs(silu);
                    }
                    Assert.True(Math.Abs(y[i] - acc) <= 1e-5 * (magnitude + 1e-3), $"step {step}, stream {s}, channel {ch}: y = {y[i]:G9}, expected {acc:G9}");
                }
        }
        var h32 = state.ToFloatArray();
        for (int i = 0; i < h64.Length; i++) Assert.Equal(h64[i], h32[i], 1e-5 * (Math.Abs(h64[i]) + 1e-3));
    }

    /// <summary>3 streams of 1000 channels (375 blocks of 8: split across threads) against each stream alone (125 blocks: inline).</summary>
    [Fact]
    public void ScanStepOfABatchEqualsEachStreamAlone()
    {
        const int batch = 3, dim = 1000, n = 16;
        var rng = new Random(4);
        Tensor R(double lo, double hi, params int[] shape)
        {
            var v = new float[shape.Aggregate(1, (p, x) => p * x)];
            for (int i = 0; i < v.Length; i++) v[i] = (float)(lo + (hi - lo) * rng.NextDouble());
            return Tensor.From(v, shape).Persist();
        }
        using var _ = GradMode.NoGrad();
        using Tensor u = R(-1, 1, batch, dim), delta = R(-3, 0.5, batch, dim), a = R(-4, -0.2, dim, n), b = R(-1, 1, batch, n), c = R(-1, 1, batch, n);
        using Tensor d = R(-1, 1, dim), z = R(-2, 2, batch, dim), bias = R(-0.5, 0.5, dim), h0 = R(-1, 1, batch, dim, n);
        using var scope = new TensorScope();
        var h = h0.Clone();
        var all = F.SelectiveScanStep(u, delta, a, b, c, h, true, d, z, bias).ToFloatArray();
        var hAll = h.ToFloatArray();
        for (int s = 0; s < batch; s++)
        {
            var hs = h0.Slice(s, 1).Clone();
            var one = F.SelectiveScanStep(u.Slice(s, 1).Clone(), delta.Slice(s, 1).Clone(), a, b.Slice(s, 1).Clone(), c.Slice(s, 1).Clone(), hs, true, d,
                z.Slice(s, 1).Clone(), bias).ToFloatArray();
            Assert.Equal(all.AsSpan(s * dim, dim).ToArray(), one);
            Assert.Equal(hAll.AsSpan(s * dim * n, dim * n).ToArray(), hs.ToFloatArray());
        }
    }

    /// <summary>
    /// x·Wᵀ with F32, BF16 and I8 weights, 1 and 3 rows of x, 300 × 200 weights (60K–180K multiply-adds: under
    /// <see cref="CpuGemv.SerialWork"/>, so inline by default): the same bits forked (SerialWork 0) and inline, and the
    /// F32 product within rounding of a float64 sum.
    /// </summary>
    [Theory]
    [InlineData(DType.F32)]
    [InlineData(DType.BF16)]
    [InlineData(DType.I8)]
    public void ProductsAreTheSameForkedOrInline(DType dtype)
    {
        const int n = 300, k = 200;
        var rng = new Random(9);
        var values = Enumerable.Range(0, n * k).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var xs = Enumerable.Range(0, 3 * k).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        using var w = Tensor.From(values, n, k).Persist();
        w.Name = "w";
        if (dtype == DType.BF16) w.ReplaceWith(w.To(DType.BF16));
        if (dtype == DType.I8)
        {
            var (q, s) = WeightQuantization.Quantize(w, "w");
            w.ReplaceWith(q, s);
        }
        w.RequiresGrad = false;
        long serial = CpuGemv.SerialWork;
        using var _ = GradMode.NoGrad();
        try
        {
            foreach (int m in new[] { 1, 3 })
            {
                using var scope = new TensorScope();
                var x = Tensor.From(xs.AsSpan(0, m * k).ToArray(), m, k);
                Assert.True((long)m * n * k < serial, "the product must be under the default threshold");
                var inline = F.Linear(x, w).ToFloatArray();
                CpuGemv.SerialWork = 0;
                var forked = F.Linear(x, w).ToFloatArray();
                CpuGemv.SerialWork = serial;
                Assert.Equal(inline, forked);
                if (dtype != DType.F32) continue;
                for (int r = 0; r < m; r++)
                    for (int o = 0; o < n; o++)
                    {
                        double sum = 0, magnitude = 0;
                        for (int i = 0; i < k; i++)
                        {
                            sum += (double)xs[r * k + i] * values[o * k + i];
                            magnitude += Math.Abs((double)xs[r * k + i] * values[o * k + i]);
                        }
                        Assert.True(Math.Abs(inline[r * n + o] - sum) <= k * 6e-8 * magnitude, $"m={m}: y[{r}, {o}] = {inline[r * n + o]:G9}, expected {sum:G9}");
                    }
            }
        }
        finally { CpuGemv.SerialWork = serial; }
    }

    /// <summary>
    /// The step's A = −exp(A_log) is cached per mixer: after A_log changes in place, a model that stepped before (its cache
    /// filled from the old values) gives the same logits as its twin that never stepped, and not the old logits.
    /// </summary>
    [Fact]
    public void CachedAFollowsALogChanges()
    {
        var config = new MambaConfig { DModel = 16, NLayer = 2, DState = 8, VocabSize = 23 };
        using var stepped = new MambaLM(config, seed: 5);
        using var fresh = new MambaLM(config, seed: 5);
        using var _ = GradMode.NoGrad();
        float[] Logits(MambaLM model)
        {
            using var state = model.NewState(1);
            using var scope = new TensorScope();
            model.Step(Tensor.From([3L], 1), state);
            return model.Step(Tensor.From([7L], 1), state).ToFloatArray();
        }
        var before = Logits(stepped);
        foreach (var model in new[] { stepped, fresh })
            foreach (var layer in model.Backbone.Layers.Items)
            {
                var aLog = ((Nn.MambaMixer)layer.Mixer).ALog.AsSpan<float>();
                for (int i = 0; i < aLog.Length; i++) aLog[i] -= 1.5f;
            }
        var after = Logits(stepped);
        Assert.NotEqual(before, after);
        Assert.Equal(Logits(fresh), after);
    }
}
