using Mamba4.Autograd;
using Mamba4.Backends;
using Mamba4.Backends.Cpu;
using Mamba4.IO;
using Mamba4.Ops;
using Mamba4.Tensors;

namespace Mamba4.Tests;

/// <summary>
/// F.Linear and F.Embedding with BF16, F16 and I8 weights (CpuNarrowGemm) against a float64 loop over the weights
/// widened in the test: BF16 bits shifted up, F16 through System.Half, I8 times its row scale. Every kernel (AVX-512,
/// the portable 256-bit path, the scalar loop), the few-row (decoding) and the blocked GEMM path, k below, at and past
/// the vector blocks.
/// </summary>
public class NarrowWeightTests
{
    /// <summary>A narrow weight [rows, cols] with its values widened to double, as the test computes them.</summary>
    internal static (Tensor Weight, double[] Widened) NarrowWeight(DType dtype, int rows, int cols, Random rng)
    {
        var values = new float[rows * cols];
        for (int i = 0; i < values.Length; i++) values[i] = (float)(rng.NextDouble() * 2 - 1);
        if (rows > 1) Array.Clear(values, cols, cols);   // a row of zeros (scale 0 for I8)
        using var f32 = Tensor.From(values, rows, cols);
        var weight = Tensor.Empty(new Shape(rows, cols)).Persist();
        var widened = new double[rows * cols];
        switch (dtype)
        {
            case DType.BF16:
                weight.ReplaceWith(f32.To(DType.BF16));
                var b = weight.AsSpan<BFloat16>();
                var bits = System.Runtime.InteropServices.MemoryMarshal.Cast<BFloat16, ushort>(b);
                for (int i = 0; i < widened.Length; i++) widened[i] = BitConverter.UInt32BitsToSingle((uint)bits[i] << 16);
                break;
            case DType.F16:
                // Random bit patterns (every exponent but 31: normals, subnormals, ±0) test the vector conversion's cases.
                var h = new Half[rows * cols];
                for (int i = 0; i < h.Length; i++)
                {
                    ushort u;
                    do u = (ushort)rng.Next(0, 1 << 16); while ((u & 0x7c00) == 0x7c00 || (u & 0x7c00) > 0x4000);   // finite, |w| < 4
                    h[i] = BitConverter.UInt16BitsToHalf(u);
                    widened[i] = (double)h[i];
                }
                weight.ReplaceWith(Tensor.From(h, rows, cols));
                break;
            case DType.I8:
                var (q, s) = WeightQuantization.Quantize(f32, "w");
                var qs = q.AsSpan<sbyte>().ToArray();
                var ss = s.AsSpan<float>().ToArray();
                for (int i = 0; i < widened.Length; i++) widened[i] = qs[i] * (double)ss[i / cols];
                weight.ReplaceWith(q, s);
                break;
        }
        weight.Name = "w";
        return (weight, widened);
    }

    private static void CheckLinear(DType dtype, int m, int n, int k, Random rng, string what)
    {
        var (w, wide) = NarrowWeight(dtype, n, k, rng);
        using (w)
        {
            var xs = new float[m * k];
            for (int i = 0; i < xs.Length; i++) xs[i] = (float)(rng.NextDouble() * 2 - 1);
            var bias = new float[n];
            for (int i = 0; i < n; i++) bias[i] = (float)rng.NextDouble();
            using var x = Tensor.From(xs, m, k);
            using var b = Tensor.From(bias, n);
            using var _ = GradMode.NoGrad();
            using var y = F.Linear(x, w, b);
            var got = y.ToFloatArray();
            for (int r = 0; r < m; r++)
                for (int o = 0; o < n; o++)
                {
                    double sum = bias[o], magnitude = Math.Abs(bias[o]);
                    for (int i = 0; i < k; i++)
                    {
                        sum += xs[r * k + i] * wide[o * k + i];
                        magnitude += Math.Abs(xs[r * k + i] * wide[o * k + i]);
                    }
                    Assert.True(Math.Abs(got[r * n + o] - sum) <= (k + 2) * 6e-8 * magnitude + 1e-30,
                        $"{what} {dtype} m={m} n={n} k={k}: y[{r}, {o}] = {got[r * n + o]:G9}, expected {sum:G9}");
                }
        }
    }

    [Theory]
    [InlineData(DType.BF16)]
    [InlineData(DType.F16)]
    [InlineData(DType.I8)]
    public void LinearMatchesWidenedReferenceOnEveryKernel(DType dtype)
    {
        var engine = Backend.Settings;
        var rng = new Random(7);
        try
        {
            foreach (var kernel in new[] { CpuNarrowKernel.Auto, CpuNarrowKernel.Vector256, CpuNarrowKernel.Scalar })
            {
                Backend.Configure(engine with { CpuNarrowKernel = kernel });
                foreach (int m in new[] { 1, 3 })
                foreach (int k in new[] { 1, 15, 16, 17, 33, 64, 100, 131 })
                    CheckLinear(dtype, m, 7, k, rng, kernel.ToString());
                CheckLinear(dtype, CpuGemv.MaxRows + 3, 300, 45, rng, kernel + " gemm");   // the blocked path, two blocks
            }
        }
        finally { Backend.Configure(engine); }
    }

    /// <summary>Each output is the same bits whether its weight row is multiplied with others or alone, and whatever the
    /// number of rows of x (a stream's logits do not depend on the batch it is decoded in).</summary>
    [Theory]
    [InlineData(DType.BF16)]
    [InlineData(DType.I8)]
    public void OutputsDoNotDependOnTilingOrBatch(DType dtype)
    {
        const int n = 9, k = 150;
        var rng = new Random(5);
        var values = new float[n * k];
        for (int i = 0; i < values.Length; i++) values[i] = (float)(rng.NextDouble() * 2 - 1);
        var xs = new float[3 * k];
        for (int i = 0; i < xs.Length; i++) xs[i] = (float)(rng.NextDouble() * 2 - 1);
        Tensor Narrow(float[] v, int rows)
        {
            using var f32 = Tensor.From(v, rows, k);
            var w = Tensor.Empty(new Shape(rows, k)).Persist();
            if (dtype == DType.BF16) w.ReplaceWith(f32.To(DType.BF16));
            else
            {
                var (q, sc) = WeightQuantization.Quantize(f32, "w");
                w.ReplaceWith(q, sc);
            }
            return w;
        }
        using var _ = GradMode.NoGrad();
        using var full = Narrow(values, n);
        using var x3 = Tensor.From(xs, 3, k);
        using var y3 = F.Linear(x3, full);
        var all = y3.ToFloatArray();
        for (int r = 0; r < 3; r++)
        {
            using var x1 = Tensor.From(xs.AsSpan(r * k, k).ToArray(), 1, k);
            using var y1 = F.Linear(x1, full);
            Assert.Equal(all.AsSpan(r * n, n).ToArray(), y1.ToFloatArray());
            for (int o = 0; o < n; o++)
            {
                using var single = Narrow(values.AsSpan(o * k, k).ToArray(), 1);
                using var yo = F.Linear(x1, single);
                Assert.Equal(all[r * n + o], yo.ToFloatArray()[0]);
            }
        }
    }

    [Fact]
    public void ForcedKernelsAreTheOnesThatRun()
    {
        var engine = Backend.Settings;
        try
        {
            Backend.Configure(engine with { CpuNarrowKernel = CpuNarrowKernel.Scalar });
            Assert.Equal(CpuNarrowKernel.Scalar, CpuNarrowGemm.Kernel);
            Backend.Configure(engine with { CpuNarrowKernel = CpuNarrowKernel.Vector256 });
            Assert.Equal(System.Runtime.Intrinsics.Vector256.IsHardwareAccelerated ? CpuNarrowKernel.Vector256 : CpuNarrowKernel.Scalar, CpuNarrowGemm.Kernel);
        }
        finally { Backend.Configure(engine); }
    }

    [Theory]
    [InlineData(DType.BF16)]
    [InlineData(DType.F16)]
    [InlineData(DType.I8)]
    public void EmbeddingRowsAreTheWidenedWeights(DType dtype)
    {
        var (w, wide) = NarrowWeight(dtype, 9, 13, new Random(3));
        using (w)
        {
            using var ids = Tensor.From(new long[] { 4, 1, 8, 4 }, 2, 2);
            using var _ = GradMode.NoGrad();
            using var y = F.Embedding(w, ids);
            Assert.Equal(new Shape(2, 2, 13), y.Shape);
            var got = y.ToFloatArray();
            long[] order = [4, 1, 8, 4];
            for (int p = 0; p < 4; p++)
                for (int c = 0; c < 13; c++)
                    Assert.Equal((float)wide[order[p] * 13 + c], got[p * 13 + c], 6e-8f * (float)Math.Abs(wide[order[p] * 13 + c]) + 1e-38f);
        }
    }

    [Fact]
    public void LowPrecisionWeightsRefuseTraining()
    {
        var (w, _) = NarrowWeight(DType.BF16, 4, 8, new Random(1));
        using (w)
        {
            using var x = Tensor.Ones(new Shape(2, 8));
            x.RequiresGrad = true;
            var e = Assert.Throws<InvalidOperationException>(() => F.Linear(x, w));
            Assert.Contains("inference only", e.Message);
            Assert.Contains("weight w", e.Message);
            Assert.Contains("BF16", e.Message);
            Assert.DoesNotContain('\n', e.Message);
        }
    }
}
