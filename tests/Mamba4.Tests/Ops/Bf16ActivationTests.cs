using Mamba4.Ops;
using Mamba4.Tensors;

namespace Mamba4.Tests;

/// <summary>
/// Activations written in BF16 for BF16 products, on the CPU (the GPU's twins: CudaOpsTests): the selective scan's output
/// asked in BF16 beside F32 inputs is the F32 output rounded to nearest even, and its gradients are the F32 op's for the
/// same upstream gradient; RMSNorm's output likewise; Linear and LinearSplit read a BF16 x as its exact F32 widening,
/// with y and x's gradient F32 (added into a gradient x already has).
/// </summary>
public class Bf16ActivationTests
{
    private static Tensor Random(Random rng, double scale, params int[] shape) =>
        Tensor.From(Enumerable.Range(0, shape.Aggregate(1, (a, b) => a * b)).Select(_ => (float)((rng.NextDouble() * 2 - 1) * scale)).ToArray(), shape);

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void ScanOutputInBf16IsTheRoundedF32OutputWithTheSameGradients(bool selective)
    {
        const int batch = 2, l = 29, d = 6, n = 4;
        var results = new List<(float[] Y, DType YType, DType GradType, float[][] Grads)>();
        foreach (var outputType in new[] { DType.F32, DType.BF16 })
        {
            var rng = new Random(5);
            using var scope = new TensorScope();
            var u = Random(rng, 1, batch, l, d);
            var delta = Random(rng, 1.5, batch, l, d);
            var a = F.Scale(F.Exp(Random(rng, 1, d, n)), -1f);
            int[] bc = selective ? [batch, l, n] : [d, n];
            var b = Random(rng, 1, bc);
            var c = Random(rng, 1, bc);
            var skip = Random(rng, 1, d);
            var z = Random(rng, 2, batch, l, d);
            var bias = Random(rng, 0.5, d);
            var w = Random(rng, 1, 3, d);
            var r = Random(rng, 1, batch, l, 3);
            Tensor[] inputs = [u, delta, a, b, c, skip, z, bias];
            foreach (var t in inputs) t.RequiresGrad = true;
            var (y, _) = F.SelectiveScan(u, delta, a, b, c, skip, z, bias, outputType: outputType);
            y.RetainGrad = true;
            F.Sum(F.Mul(F.Linear(y, w), r)).Backward();
            results.Add((y.ToFloatArray(), y.DType, y.Grad!.DType, inputs.Select(t => t.Grad!.ToFloatArray()).ToArray()));
        }
        var (wide, narrow) = (results[0], results[1]);
        Assert.Equal(DType.BF16, narrow.YType);
        Assert.Equal(DType.F32, narrow.GradType);
        Assert.Equal(Tensor.From(wide.Y, wide.Y.Length).To(DType.BF16).ToFloatArray(), narrow.Y);
        string[] names = ["du", "ddelta", "dA", "dB", "dC", "dD", "dz", "dbias"];
        for (int k = 0; k < names.Length; k++)
            Assert.True(wide.Grads[k].SequenceEqual(narrow.Grads[k]), $"{names[k]} differs between the F32 and the BF16 output");
    }

    [Fact]
    public void ScanRefusesAnOutputTypeOtherThanItsInputsOrBf16()
    {
        using var scope = new TensorScope();
        var u = Tensor.Zeros(new Shape(1, 3, 2));
        var a = Tensor.Zeros(new Shape(2, 4));
        var bc = Tensor.Zeros(new Shape(1, 3, 4));
        var e = Assert.Throws<ArgumentException>(() => F.SelectiveScan(u, u, a, bc, bc, outputType: DType.F16));
        Assert.Contains("outputType F16 with u F32", e.Message);
        var h = u.To(DType.BF16);
        e = Assert.Throws<ArgumentException>(() => F.SelectiveScan(h, h, a, bc.To(DType.BF16), bc.To(DType.BF16), outputType: DType.F32));
        Assert.Contains("outputType F32 with u BF16", e.Message);
    }

    /// <summary>x BF16 used by two products (the second's backward adds into the gradient the first wrote, β = 1) and a
    /// bias: every output and gradient equals the F32 path on x's widening, bit for bit; x's gradient is F32.</summary>
    [Fact]
    public void LinearReadsABf16InputAsItsF32Widening()
    {
        var results = new List<(float[] Y, float[] Dx, DType DxType, float[] Dw, float[] Db)>();
        foreach (var type in new[] { DType.F32, DType.BF16 })
        {
            var rng = new Random(8);
            using var scope = new TensorScope();
            var x = Random(rng, 1, 2, 5, 7).To(DType.BF16).To(type);
            var w = Random(rng, 1, 4, 7);
            var w2 = Random(rng, 1, 3, 7);
            var bias = Random(rng, 1, 4);
            var r = Random(rng, 1, 2, 5, 4);
            var r2 = Random(rng, 1, 2, 5, 3);
            foreach (var t in new[] { x, w, w2, bias }) t.RequiresGrad = true;
            var y = F.Linear(x, w, bias);
            F.Add(F.Sum(F.Mul(y, r)), F.Sum(F.Mul(F.Linear(x, w2), r2))).Backward();
            results.Add((y.ToFloatArray(), x.Grad!.ToFloatArray(), x.Grad!.DType, w.Grad!.ToFloatArray(), bias.Grad!.ToFloatArray()));
        }
        Assert.Equal(DType.F32, results[1].DxType);
        Assert.Equal(results[0].Y, results[1].Y);
        Assert.Equal(results[0].Dx, results[1].Dx);
        Assert.Equal(results[0].Dw, results[1].Dw);
        Assert.Equal(results[0].Db, results[1].Db);
    }

    [Fact]
    public void RmsNormOutputInBf16IsTheRoundedF32OutputWithTheSameGradients()
    {
        var results = new List<(float[] Y, DType YType, float[] Dx, float[] Dw)>();
        foreach (var outputType in new[] { DType.F32, DType.BF16 })
        {
            var rng = new Random(6);
            using var scope = new TensorScope();
            var x = Random(rng, 2, 3, 7, 12);
            var w = Random(rng, 1, 12);
            var proj = Random(rng, 1, 5, 12);
            var r = Random(rng, 1, 3, 7, 5);
            x.RequiresGrad = w.RequiresGrad = true;
            var y = F.RmsNorm(x, w, 1e-5f, outputType);
            // x also reaches the loss directly: RMSNorm's dx is added to that gradient (accumulate)
            F.Add(F.Sum(F.Mul(F.Linear(y, proj), r)), F.Sum(F.Mul(x, x))).Backward();
            results.Add((y.ToFloatArray(), y.DType, x.Grad!.ToFloatArray(), w.Grad!.ToFloatArray()));
        }
        Assert.Equal(DType.BF16, results[1].YType);
        Assert.Equal(Tensor.From(results[0].Y, results[0].Y.Length).To(DType.BF16).ToFloatArray(), results[1].Y);
        Assert.Equal(results[0].Dx, results[1].Dx);
        Assert.Equal(results[0].Dw, results[1].Dw);
        Assert.Contains("outputType must be F32 or BF16", Assert.Throws<ArgumentException>(() =>
            F.RmsNorm(Tensor.Zeros(new Shape(2, 4)), Tensor.Zeros(new Shape(4)), 1e-5f, DType.F16)).Message);
    }

    /// <summary>Low-precision weights are for inference: a BF16 x that wants a gradient is refused as an F32 one is, not
    /// widened into a copy the tape does not see (which would leave x without a gradient).</summary>
    [Fact]
    public void ANarrowWeightRefusesABf16InputThatWantsAGradient()
    {
        using var scope = new TensorScope();
        var rng = new Random(10);
        var w = Random(rng, 1, 4, 6).To(DType.BF16);
        var x = Random(rng, 1, 3, 6).To(DType.BF16);
        Assert.Equal(new Shape(3, 4), F.Linear(x, w).Shape);   // no gradient wanted: inference
        x.RequiresGrad = true;
        Assert.Contains("inference only", Assert.Throws<InvalidOperationException>(() => F.Linear(x, w)).Message);
        Assert.Contains("inference only", Assert.Throws<InvalidOperationException>(() => F.LinearSplit(x, w, null, 2, 2)).Message);
    }

    [Fact]
    public void LinearSplitReadsABf16InputAsItsF32Widening()
    {
        var results = new List<float[][]>();
        foreach (var type in new[] { DType.F32, DType.BF16 })
        {
            var rng = new Random(9);
            using var scope = new TensorScope();
            var x = Random(rng, 1, 2, 5, 7).To(DType.BF16).To(type);
            var w = Random(rng, 1, 9, 7);
            var bias = Random(rng, 1, 9);
            var r = Random(rng, 1, 2, 5, 9);
            foreach (var t in new[] { x, w, bias }) t.RequiresGrad = true;
            var parts = F.LinearSplit(x, w, bias, 4, 5);
            Assert.All(parts, p => Assert.Equal(DType.F32, p.DType));
            var rs = F.SplitLastAxis(r, 4, 5);
            F.Add(F.Sum(F.Mul(parts[0], rs[0])), F.Sum(F.Mul(parts[1], rs[1]))).Backward();
            Assert.Equal(DType.F32, x.Grad!.DType);
            results.Add([parts[0].ToFloatArray(), parts[1].ToFloatArray(), x.Grad!.ToFloatArray(), w.Grad!.ToFloatArray(), bias.Grad!.ToFloatArray()]);
        }
        string[] names = ["part 0", "part 1", "dx", "dW", "db"];
        for (int k = 0; k < names.Length; k++)
            Assert.True(results[0][k].SequenceEqual(results[1][k]), $"{names[k]} differs between the F32 and the BF16 input");
    }

    /// <summary>Gradients a product alone reads (Tensor.NarrowGradient, set by Linear with BF16 products): the scan writes dΔ
    /// and dz in BF16, the conv its dx, each the F32 gradient rounded; every other gradient unchanged.</summary>
    [Fact]
    public void ScanAndConvWriteNarrowGradientsAsTheRoundedF32Ones()
    {
        const int batch = 2, l = 23, d = 6, n = 4;
        var results = new List<(DType[] Types, float[][] Grads)>();
        foreach (bool narrow in new[] { false, true })
        {
            var rng = new Random(15);
            using var scope = new TensorScope();
            var xin = Random(rng, 1, batch, l, d);
            var convW = Random(rng, 0.7, d, 1, 4);
            var convB = Random(rng, 0.2, d);
            var delta = Random(rng, 1.5, batch, l, d);
            var a = F.Scale(F.Exp(Random(rng, 1, d, n)), -1f);
            var b = Random(rng, 1, batch, l, n);
            var c = Random(rng, 1, batch, l, n);
            var skip = Random(rng, 1, d);
            var z = Random(rng, 2, batch, l, d);
            var bias = Random(rng, 0.5, d);
            var r = Random(rng, 1, batch, l, d);
            Tensor[] inputs = [xin, convW, convB, delta, a, b, c, skip, z, bias];
            foreach (var t in inputs) t.RequiresGrad = true;
            if (narrow) xin.NarrowGradient = delta.NarrowGradient = z.NarrowGradient = DType.BF16;
            var u = F.CausalConv1d(xin, convW, convB, silu: true);
            var (y, _) = F.SelectiveScan(u, delta, a, b, c, skip, z, bias);
            F.Sum(F.Mul(y, r)).Backward();
            results.Add((inputs.Select(t => t.Grad!.DType).ToArray(), inputs.Select(t => t.Grad!.ToFloatArray()).ToArray()));
        }
        string[] names = ["dx (conv input)", "dconv.weight", "dconv.bias", "ddelta", "dA", "dB", "dC", "dD", "dz", "dbias"];
        int[] narrowed = [0, 3, 8];
        for (int k = 0; k < names.Length; k++)
        {
            var wide = results[0].Grads[k];
            var expected = narrowed.Contains(k) ? Tensor.From(wide, wide.Length).To(DType.BF16).ToFloatArray() : wide;
            Assert.Equal(narrowed.Contains(k) ? DType.BF16 : DType.F32, results[1].Types[k]);
            Assert.True(expected.SequenceEqual(results[1].Grads[k]), $"{names[k]} is not the {(narrowed.Contains(k) ? "rounded " : "")}F32 gradient");
        }
    }

    /// <summary>A narrow gradient meeting another is summed in F32: x (NarrowGradient BF16) read by x ⊙ x and then by the conv
    /// (whose backward runs first and writes BF16); x's gradient is F32 and equals the conv's rounded dx plus x, plus x.</summary>
    [Fact]
    public void ANarrowGradientMeetingAnotherIsSummedInF32()
    {
        using var scope = new TensorScope();
        var rng = new Random(16);
        var x = Random(rng, 1, 2, 9, 5);
        var w = Random(rng, 0.7, 5, 1, 3);
        var r = Random(rng, 1, 2, 9, 5);
        var x2 = x.Clone();
        foreach (var t in new[] { x, x2, w }) t.RequiresGrad = true;
        x.NarrowGradient = DType.BF16;
        F.Add(F.Sum(F.Mul(x, x)), F.Sum(F.Mul(F.CausalConv1d(x, w, null, silu: true), r))).Backward();
        F.Sum(F.Mul(F.CausalConv1d(x2, w, null, silu: true), r)).Backward();   // the conv's F32 dx alone
        Assert.Equal(DType.F32, x.Grad!.DType);
        var convDx = x2.Grad!.To(DType.BF16).ToFloatArray();
        var xs = x.ToFloatArray();
        var expected = convDx.Select((g, i) => (g + xs[i]) + xs[i]).ToArray();   // x ⊙ x's two terms, one at a time
        Assert.Equal(expected, x.Grad.ToFloatArray());
    }
}
