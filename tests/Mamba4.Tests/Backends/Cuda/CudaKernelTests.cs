using Mamba4.Autograd;
using Mamba4.Backends;
using Mamba4.Backends.Cpu;
using Mamba4.Backends.Cuda;
using Mamba4.Inference;
using Mamba4.Models;
using Mamba4.Tensors;
using static Mamba4.Tests.CudaTest;

namespace Mamba4.Tests;

/// <summary>
/// The kernels that replaced the host fallbacks (multi-tensor AdamW, gradient norm, KV-cache attention step, GRU,
/// attention with dropout, non-causal attention) against the CPU backend on random inputs with odd shapes, and the
/// captured CUDA graph of a decoding step against the ordinary step.
/// </summary>
[Trait("Category", "Cuda")]
[Collection("Cuda")]
public class CudaKernelTests
{
    [Fact]
    public void AdamWOverManyTensorsInOneLaunch()
    {
        var gpu = Gpu;
        using var scope = new TensorScope();
        var rng = new Random(21);
        int[][] shapes = [[1], [7, 13], [300, 257], [3, 5, 11]];
        var cpu = new List<AdamWParameter>();
        var dev = new List<AdamWParameter>();
        for (int i = 0; i < shapes.Length; i++)
        {
            var (p, g, m) = (Random(rng, shapes[i]), Random(rng, shapes[i]), Random(rng, shapes[i]));
            var v = Uniform(rng, 0, 1, shapes[i]);
            float wd = i == 0 ? 0f : 0.1f;
            long skip = i == 1 ? 4 : i == 2 ? 0 : -1;   // an embedding's padding row: no decay
            cpu.Add(new AdamWParameter(p, g, m, v, wd, skip));
            dev.Add(new AdamWParameter(p.To(Cuda), g.To(Cuda), m.To(Cuda), v.To(Cuda), wd, skip));
        }
        for (int step = 1; step <= 3; step++)
        {
            float bc1 = 1 - MathF.Pow(0.9f, step), bc2 = 1 - MathF.Pow(0.999f, step);
            float clip = step == 2 ? 0.37f : 1f;   // gradient clipping's factor, read with each gradient
            Cpu.AdamWStep(cpu, 3e-3f, 0.9f, 0.999f, 1e-8f, bc1, bc2, clip);
            gpu.AdamWStep(dev, 3e-3f, 0.9f, 0.999f, 1e-8f, bc1, bc2, clip);
        }
        for (int i = 0; i < shapes.Length; i++)
        {
            Close(cpu[i].Param, dev[i].Param, 1e-5, $"param {i}");
            Close(cpu[i].M, dev[i].M, 1e-5, $"m {i}");
            Close(cpu[i].V, dev[i].V, 1e-5, $"v {i}");
        }
    }

    [Fact]
    public void SumOfSquaresOverManyTensors()
    {
        var gpu = Gpu;
        using var scope = new TensorScope();
        var rng = new Random(22);
        var xs = new[] { Random(rng, 1), Random(rng, 999), Random(rng, 70_001), Random(rng, 3, 4, 5) };
        double expected = 0;
        foreach (var x in xs) foreach (var f in x.ToFloatArray()) expected += (double)f * f;   // plain double loop
        double got = gpu.SumOfSquares(xs.Select(x => x.To(Cuda)).ToList());
        Assert.Equal(expected, got, expected * 1e-9);
        Assert.Equal(0, gpu.SumOfSquares([]));
    }

    [Theory]
    [InlineData(1, 1, 8, 5, 1)]
    [InlineData(3, 2, 24, 40, 17)]
    [InlineData(2, 4, 32, 33, 33)]
    [InlineData(1, 3, 100, 9, 0)]
    public void AttentionStepWithKvCache(int batch, int heads, int dh, int capacity, int length)
    {
        var gpu = Gpu;
        using var scope = new TensorScope();
        var rng = new Random(23);
        int width = heads * dh;
        var q = Random(rng, batch, width);
        var kc = Random(rng, batch, capacity, width);
        var vc = Random(rng, batch, capacity, width);
        var (yc, yg) = Outputs(batch, width);
        if (length == 0) yc.Backend.Fill(yc, 0f);
        else Cpu.AttentionStep(q, kc, vc, length, heads, yc);
        gpu.AttentionStep(q.To(Cuda), kc.To(Cuda), vc.To(Cuda), length, heads, yg);
        Close(yc, yg, 1e-5, "attention step y");
    }

    [Theory]
    [InlineData(1, 1, 1, true, true)]
    [InlineData(3, 7, 33, true, false)]
    [InlineData(2, 12, 64, false, true)]
    [InlineData(5, 3, 5, false, false)]
    public void GruForwardBackward(int batch, int len, int h, bool bias, bool withH0)
    {
        var gpu = Gpu;
        using var scope = new TensorScope();
        var rng = new Random(24);
        var gi = Random(rng, batch, len, 3 * h);
        var w = Uniform(rng, -0.5, 0.5, 3 * h, h);
        var b = bias ? Random(rng, 3 * h) : null;
        var h0 = withH0 ? Random(rng, batch, h) : null;
        var dy = Random(rng, batch, len, h);
        var (yc, yg) = Outputs(batch, len, h);
        var (gc, gg) = Outputs(batch, len, 4 * h);
        CpuBackend.Instance.GruForward(gi, w, b, h0, yc, gc);
        gpu.GruForward(gi.To(Cuda), w.To(Cuda), b?.To(Cuda), h0?.To(Cuda), yg, gg);
        Close(yc, yg, 1e-5, "gru y");
        Close(gc, gg, 1e-5, "gru gates");
        var (dgic, dgig) = Outputs(batch, len, 3 * h);
        var (dwc, dwg) = Outputs(3 * h, h);
        var (dbc, dbg) = Outputs(3 * h);
        var (dh0c, dh0g) = Outputs(batch, h);
        CpuBackend.Instance.GruBackward(w, h0, yc, gc, dy, dgic, dwc, bias ? dbc : null, withH0 ? dh0c : null);
        gpu.GruBackward(w.To(Cuda), h0?.To(Cuda), yg, gg, dy.To(Cuda), dgig, dwg, bias ? dbg : null, withH0 ? dh0g : null);
        Close(dgic, dgig, 1e-5, "gru dgi");
        Close(dwc, dwg, 1e-5, "gru dW_hh");
        if (bias) Close(dbc, dbg, 1e-5, "gru db_hh");
        if (withH0) Close(dh0c, dh0g, 1e-5, "gru dh0");
    }

    private static (Tensor Q, Tensor K, Tensor V, Tensor Dy, Tensor? Pad) AttentionInputs(Random rng, int batch, int l, int width, bool padded)
    {
        Tensor? pad = null;
        if (padded)
        {
            var ids = new long[batch * l];
            for (int b = 0; b < batch; b++)
                for (int j = 0; j < l; j++) ids[b * l + j] = b == 0 ? (j < 3 ? 0 : 1 + j) : (j % 4 == 0 ? 0 : 1 + j);
            pad = Tensor.From(ids, batch, l);
        }
        return (Random(rng, batch, l, width), Random(rng, batch, l, width), Random(rng, batch, l, width), Random(rng, batch, l, width), pad);
    }

    [Theory]
    [InlineData(1, 1, 1, 8, 0.3f, false)]
    [InlineData(2, 37, 2, 24, 0.2f, false)]
    [InlineData(3, 29, 1, 64, 0.5f, true)]
    [InlineData(2, 50, 4, 16, 0f, true)]
    public void AttentionDropoutForwardBackward(int batch, int l, int heads, int dh, float p, bool padded)
    {
        var gpu = Gpu;
        using var scope = new TensorScope();
        var rng = new Random(25);
        int width = heads * dh;
        var (q, k, v, dy, pad) = AttentionInputs(rng, batch, l, width, padded);
        var (gq, gk, gv, gdy, gpad) = (q.To(Cuda), k.To(Cuda), v.To(Cuda), dy.To(Cuda), pad?.To(Cuda));
        const ulong seed = 0x5eed;
        var (yc, yg) = Outputs(batch, l, width);
        var (lc, lg) = Outputs(batch, heads, l);
        Cpu.AttentionForward(new AttentionSpec(heads, KeyPadding: pad, DropoutP: p, Seed: seed), q, k, v, yc, lc);
        gpu.AttentionForward(new AttentionSpec(heads, KeyPadding: gpad, DropoutP: p, Seed: seed), gq, gk, gv, yg, lg);
        Close(yc, yg, 1e-5, "dropout attention y");
        Close(lc, lg, 1e-5, "dropout attention lse");
        var (dqc, dqg) = Outputs(batch, l, width);
        var (dkc, dkg) = Outputs(batch, l, width);
        var (dvc, dvg) = Outputs(batch, l, width);
        Cpu.AttentionBackward(new AttentionSpec(heads, KeyPadding: pad, DropoutP: p, Seed: seed), q, k, v, yc, lc, dy, dqc, dkc, dvc);
        gpu.AttentionBackward(new AttentionSpec(heads, KeyPadding: gpad, DropoutP: p, Seed: seed), gq, gk, gv, yg, lg, gdy, dqg, dkg, dvg);
        Close(dqc, dqg, 1e-5, "dropout attention dq");
        Close(dkc, dkg, 1e-5, "dropout attention dk");
        Close(dvc, dvg, 1e-5, "dropout attention dv");
    }

    [Theory]
    [InlineData(1, 1, 1, 8, false)]
    [InlineData(2, 37, 2, 24, false)]
    [InlineData(3, 96, 4, 32, false)]
    [InlineData(2, 37, 2, 24, true)]
    [InlineData(1, 2, 1, 8, true)]
    public void NonCausalAttentionForwardBackward(int batch, int l, int heads, int dh, bool padded)
    {
        var gpu = Gpu;
        using var scope = new TensorScope();
        var rng = new Random(26);
        int width = heads * dh;
        var (q, k, v, dy, pad) = AttentionInputs(rng, batch, l, width, padded);
        var (gq, gk, gv, gdy) = (q.To(Cuda), k.To(Cuda), v.To(Cuda), dy.To(Cuda));
        var cpuSpec = new AttentionSpec(heads, Causal: false, KeyPadding: pad);
        var gpuSpec = cpuSpec with { KeyPadding = pad?.To(Cuda) };
        var (yc, yg) = Outputs(batch, l, width);
        var (lc, lg) = Outputs(batch, heads, l);
        Cpu.AttentionForward(cpuSpec, q, k, v, yc, lc);
        gpu.AttentionForward(gpuSpec, gq, gk, gv, yg, lg);
        Close(yc, yg, 1e-5, "non-causal y");
        Close(lc, lg, 1e-5, "non-causal lse");
        var (dqc, dqg) = Outputs(batch, l, width);
        var (dkc, dkg) = Outputs(batch, l, width);
        var (dvc, dvg) = Outputs(batch, l, width);
        Cpu.AttentionBackward(cpuSpec, q, k, v, yc, lc, dy, dqc, dkc, dvc);
        gpu.AttentionBackward(gpuSpec, gq, gk, gv, yg, lg, gdy, dqg, dkg, dvg);
        Close(dqc, dqg, 1e-5, "non-causal dq");
        Close(dkc, dkg, 1e-5, "non-causal dk");
        Close(dvc, dvg, 1e-5, "non-causal dv");
    }

    [Theory]
    [InlineData(1)]
    [InlineData(5)]
    public void CapturedDecodeStepEqualsTheOrdinaryStep(int batch)
    {
        var gpu = Gpu;
        var config = new MambaConfig { DModel = 48, NLayer = 3, DState = 8, VocabSize = 101 };
        using var model = new MambaLM(config, seed: 5);
        model.To(Cuda);
        using var plain = model.NewState(batch);
        using var captured = model.NewState(batch);
        var rng = new Random(27);
        using var noGrad = GradMode.NoGrad();
        var first = Enumerable.Range(0, batch).Select(_ => (long)rng.Next(config.VocabSize)).ToArray();
        using (new TensorScope())
        {
            model.Step(Tensor.From(first, batch), plain);    // one ordinary step each (kernels compiled, cuBLAS ready)
            model.Step(Tensor.From(first, batch), captured);
        }
        using var graph = StepGraph.TryCreate(model, captured, batch)!;
        Assert.NotNull(graph);
        Assert.True(graph.Kernels > 10, $"{graph.Kernels} kernels captured");
        for (int i = 0; i < 6; i++)
        {
            var tokens = Enumerable.Range(0, batch).Select(_ => (long)rng.Next(config.VocabSize)).ToArray();
            using var scope = new TensorScope();
            var expected = model.Step(Tensor.From(tokens, batch), plain).ToFloatArray();
            long before = gpu.LaunchCount;
            var got = graph.Step(tokens).ToFloatArray();
            Assert.Equal(before, gpu.LaunchCount);   // the replay launches no kernel of its own
            Assert.Equal(expected, got);
            Assert.Equal(plain.Position, captured.Position);
        }
        for (int layer = 0; layer < config.NLayer; layer++)
        {
            Assert.Equal(plain.Layers[layer].SsmState.ToFloatArray(), captured.Layers[layer].SsmState.ToFloatArray());
            Assert.Equal(plain.Layers[layer].ConvState.ToFloatArray(), captured.Layers[layer].ConvState.ToFloatArray());
        }
    }
}

/// <summary>Mixed precision: BF16 tensor-core GEMMs (operands rounded to BF16, F32 accumulation) under F32 master weights.</summary>
[Trait("Category", "Cuda")]
[Collection("Cuda")]
public class CudaMixedPrecisionTests
{
    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(true, true)]
    public void Bf16GemmRoundsTheOperandsAndAccumulatesInF32(bool transA, bool transB)
    {
        var gpu = Gpu;
        using var scope = new TensorScope();
        var rng = new Random(31);
        int m = 37, n = 53, k = 257;
        var a = transA ? Random(rng, k, m) : Random(rng, m, k);
        var b = transB ? Random(rng, n, k) : Random(rng, k, n);
        var c = Random(rng, m, n);
        var reference = c.Clone();
        Cpu.Gemm(a, transA, b, transB, reference, 0.5f, 0.25f);
        var g = c.To(Cuda);
        try
        {
            gpu.MatmulPrecision = MatmulPrecision.Bf16;
            gpu.Gemm(a.To(Cuda), transA, b.To(Cuda), transB, g, 0.5f, 0.25f);
        }
        finally { gpu.MatmulPrecision = MatmulPrecision.F32; }
        double err = 0, norm = 0;
        var (x, y) = (reference.ToFloatArray(), g.ToFloatArray());
        for (int i = 0; i < x.Length; i++) { err += (x[i] - y[i]) * (double)(x[i] - y[i]); norm += (double)x[i] * x[i]; }
        double rel = Math.Sqrt(err / norm);
        Assert.True(rel > 1e-5 && rel < 1e-2, $"‖bf16 − f32‖/‖f32‖ = {rel:G3} (BF16 operands: expected between 1e-5 and 1e-2)");

        // times the identity, the product is exactly the BF16 rounding of A (as the CPU's F32 → BF16 conversion)
        var eye = Tensor.Zeros(new Shape(k, k));
        for (int i = 0; i < k; i++) eye.AsSpan<float>()[i * k + i] = 1f;
        var a2 = Random(rng, m, k);
        var rounded = Tensor.Zeros(new Shape(m, k), DType.F32, Cuda);
        try
        {
            gpu.MatmulPrecision = MatmulPrecision.Bf16;
            gpu.Gemm(a2.To(Cuda), false, eye.To(Cuda), false, rounded, 1f, 0f);
        }
        finally { gpu.MatmulPrecision = MatmulPrecision.F32; }
        Assert.Equal(a2.To(DType.BF16).To(DType.F32).ToFloatArray(), rounded.ToFloatArray());
    }

    /// <summary>With BF16 products, Linear's and LinearSplit's backward (and LinearCrossEntropy, not checked bit for bit here)
    /// round an operand used by several products once (IBackend.ProductOperand) instead of once a product: the same bits as
    /// the products rounding their F32 operands themselves, as A or as B.</summary>
    [Fact]
    public void OperandsRoundedOnceGiveTheSameProductsAsRoundedEachTime()
    {
        var gpu = Gpu;
        using var scope = new TensorScope();
        var rng = new Random(44);
        var x = Random(rng, 37, 96).To(Cuda);
        var w = Random(rng, 80, 96).To(Cuda);
        var dy = Random(rng, 37, 80).To(Cuda);
        try
        {
            gpu.MatmulPrecision = MatmulPrecision.Bf16;
            using var dy16 = gpu.ProductOperand(dy);
            Assert.NotNull(dy16);
            Assert.Equal(DType.BF16, dy16!.DType);
            Assert.Equal(dy.To(DType.BF16).ToFloatArray(), dy16.ToFloatArray());   // the CPU's round-to-nearest-even
            using var x16 = gpu.ProductOperand(x);
            foreach (var (a, a16, ta, b, b16, tb, rows, cols) in new[] { (dy, dy16, false, w, (Tensor?)null, false, 37, 96), (dy, dy16, true, x, x16, false, 80, 96) })
            {
                var each = Tensor.Zeros(new Shape(rows, cols), DType.F32, Cuda);
                var once = Tensor.Zeros(new Shape(rows, cols), DType.F32, Cuda);
                gpu.Gemm(a, ta, b, tb, each, 1f, 0f);
                gpu.Gemm(a16!, ta, b16 ?? b, tb, once, 1f, 0f);
                Assert.Equal(each.ToFloatArray(), once.ToFloatArray());
            }
            // through the ops: Linear's gradients equal the products on F32 operands
            var xp = x.Clone(); xp.RequiresGrad = true;
            var wp = w.Clone(); wp.RequiresGrad = true;
            var y = Ops.F.Linear(xp, wp);
            Ops.F.Sum(Ops.F.Mul(y, dy)).Backward();
            var dx = Tensor.Zeros(new Shape(37, 96), DType.F32, Cuda);
            var dw = Tensor.Zeros(new Shape(80, 96), DType.F32, Cuda);
            gpu.Gemm(dy, false, w, false, dx, 1f, 0f);
            gpu.Gemm(dy, true, x, false, dw, 1f, 0f);
            Assert.Equal(dx.ToFloatArray(), xp.Grad!.ToFloatArray());
            Assert.Equal(dw.ToFloatArray(), wp.Grad!.ToFloatArray());

            // LinearSplit into three parts, the middle one without a gradient: y_i = x W_iᵀ; dx = Σ dy_i W_i in order, dW_i = dy_iᵀ x
            var xs = x.Clone(); xs.RequiresGrad = true;
            var ws = w.Clone(); ws.RequiresGrad = true;
            var parts = Ops.F.LinearSplit(xs, ws, null, 30, 20, 30);
            var g0 = Random(rng, 37, 30).To(Cuda);
            var g2 = Random(rng, 37, 30).To(Cuda);
            Ops.F.Add(Ops.F.Sum(Ops.F.Mul(parts[0], g0)), Ops.F.Sum(Ops.F.Mul(parts[2], g2))).Backward();
            var w0 = w.ViewOf(new Shape(30, 96), 0);
            var w2 = w.ViewOf(new Shape(30, 96), 50L * 96 * sizeof(float));
            var p2 = Tensor.Zeros(new Shape(37, 30), DType.F32, Cuda);   // the forward: x rounded once for the three parts
            gpu.Gemm(x, false, w2, true, p2, 1f, 0f);
            Assert.Equal(p2.ToFloatArray(), parts[2].ToFloatArray());
            var dxs = Tensor.Zeros(new Shape(37, 96), DType.F32, Cuda);
            gpu.Gemm(g0, false, w0, false, dxs, 1f, 0f);
            gpu.Gemm(g2, false, w2, false, dxs, 1f, 1f);
            var dws = Tensor.Zeros(new Shape(80, 96), DType.F32, Cuda);
            gpu.Gemm(g0, true, x, false, dws.ViewOf(new Shape(30, 96), 0), 1f, 0f);
            gpu.Gemm(g2, true, x, false, dws.ViewOf(new Shape(30, 96), 50L * 96 * sizeof(float)), 1f, 0f);
            Assert.Equal(dxs.ToFloatArray(), xs.Grad!.ToFloatArray());
            Assert.Equal(dws.ToFloatArray(), ws.Grad!.ToFloatArray());
        }
        finally { gpu.MatmulPrecision = MatmulPrecision.F32; }
        Assert.Null(gpu.ProductOperand(dy));   // F32 products: nothing to round
    }

    /// <summary>With BF16 products, LinearCrossEntropy's cross-entropy writes dlogits in BF16 itself (no F32 dlogits, no
    /// rounding pass): its gradients equal, bit for bit, the products on the F32 dlogits the unfused ops give (which the
    /// products round themselves), over several chunks.</summary>
    [Fact]
    public void HeadGradientsFromBf16DlogitsEqualTheProductsOnF32Dlogits()
    {
        var gpu = Gpu;
        using var scope = new TensorScope();
        var rng = new Random(45);
        int rows = 23, dim = 32, vocab = 70, chunk = 8;
        var h = Random(rng, rows, dim).To(Cuda);
        var w = Random(rng, vocab, dim).To(Cuda);
        var targets = Enumerable.Range(0, rows).Select(i => i % 5 == 4 ? -100L : rng.Next(vocab)).ToArray();
        try
        {
            gpu.MatmulPrecision = MatmulPrecision.Bf16;
            var hp = h.Clone(); hp.RequiresGrad = true;
            var wp = w.Clone(); wp.RequiresGrad = true;
            Ops.F.LinearCrossEntropy(hp, wp, Tensor.From(targets, rows), chunkRows: chunk).Backward();
            float scale = 1f / targets.Count(t => t != -100);
            var dh = Tensor.Zeros(new Shape(rows, dim), DType.F32, Cuda);
            var dw = Tensor.Zeros(new Shape(vocab, dim), DType.F32, Cuda);
            var t = Tensor.From(targets, rows).To(Cuda);
            for (int r0 = 0; r0 < rows; r0 += chunk)
            {
                int n = Math.Min(chunk, rows - r0);
                var hc = h.ViewOf(new Shape(n, dim), (long)r0 * dim * sizeof(float));
                var tc = t.ViewOf(new Shape(n), (long)r0 * sizeof(long));
                var z = Tensor.Empty(new Shape(n, vocab), DType.F32, Cuda);
                gpu.Gemm(hc, false, w, true, z, 1f, 0f);
                var (loss, lse) = (Tensor.Empty(new Shape(n), DType.F32, Cuda), Tensor.Empty(new Shape(n), DType.F32, Cuda));
                gpu.CrossEntropyForward(z, tc, -100, loss, lse);
                var dz = Tensor.Empty(new Shape(n, vocab), DType.F32, Cuda);
                gpu.CrossEntropyBackward(z, tc, -100, lse, scale, dz);
                gpu.Gemm(dz, false, w, false, dh.ViewOf(new Shape(n, dim), (long)r0 * dim * sizeof(float)), 1f, 0f);
                gpu.Gemm(dz, true, hc, false, dw, 1f, 1f);
            }
            Assert.Equal(dh.ToFloatArray(), hp.Grad!.ToFloatArray());
            Assert.Equal(dw.ToFloatArray(), wp.Grad!.ToFloatArray());
        }
        finally { gpu.MatmulPrecision = MatmulPrecision.F32; }
    }

    /// <summary>A Mamba-1 LM of d_model 64 and 16 states on the GPU, and random ids (batch × length) for it.</summary>
    private static (MambaLM Model, Tensor Ids) SmallModel(int layers, int seed, int idsSeed, int batch, int length)
    {
        var model = new MambaLM(new MambaConfig { DModel = 64, NLayer = layers, DState = 16, VocabSize = 50 }, seed);
        model.To(Cuda);
        var rng = new Random(idsSeed);
        return (model, Tensor.From(Enumerable.Range(0, batch * length).Select(_ => (long)rng.Next(50)).ToArray(), batch, length));
    }

    /// <summary>Without gradients (a prefill) and with BF16 products, the conv writes u's BF16 copy for x_proj beside u
    /// (F.CausalConv1dWithBf16Copy) instead of x_proj rounding u in a pass: the same logits as with every activation written
    /// in F32 and rounded by the products (CudaBackend.Bf16Activations off), at the first and every later position.</summary>
    [Fact]
    public void Bf16ActivationsGiveThePrefillOfRoundedF32Activations()
    {
        var gpu = Gpu;
        var (model, ids) = SmallModel(layers: 2, seed: 6, idsSeed: 35, batch: 2, length: 90);
        using var owned = model;
        var logits = new List<float[]>();
        try
        {
            gpu.MatmulPrecision = MatmulPrecision.Bf16;
            foreach (bool narrow in new[] { false, true })
            {
                gpu.Bf16Activations = narrow;
                using var noGrad = GradMode.NoGrad();
                using var scope = new TensorScope();
                logits.Add(model.Forward(ids).ToFloatArray());
            }
        }
        finally
        {
            gpu.MatmulPrecision = MatmulPrecision.F32;
            gpu.Bf16Activations = true;
        }
        Assert.Equal(logits[0], logits[1]);
    }

    /// <summary>Without gradients every block after the first adds onto the previous block's output in place (out_proj's
    /// cuBLAS product with β = 1: MambaBlock.ForwardInPlace): the hidden state of the forward that adds in a pass of its own
    /// (kept when the hidden states are asked for), with F32 and BF16 products, to the last rounding of each addition.</summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ThePrefillAddsOntoTheResidualStreamInPlaceAndComputesTheSame(bool bf16)
    {
        var gpu = Gpu;
        var (model, ids) = SmallModel(layers: 3, seed: 8, idsSeed: 36, batch: 2, length: 77);
        using var owned = model;
        var hidden = new List<Tensor>();
        try
        {
            gpu.MatmulPrecision = bf16 ? MatmulPrecision.Bf16 : MatmulPrecision.F32;
            using var noGrad = GradMode.NoGrad();
            using var scope = new TensorScope();
            foreach (bool keep in new[] { true, false })
                hidden.Add(scope.Keep(model.Hidden(ids, null, keep ? new List<Tensor>() : null)));
            Close(hidden[0], hidden[1], 1e-6, "final hidden state, in place vs added in a pass");
        }
        finally { gpu.MatmulPrecision = MatmulPrecision.F32; foreach (var t in hidden) t.Dispose(); }
    }

    /// <summary>With BF16 products, the block's RMSNorm and the scan write in_proj's and out_proj's operands in BF16, and the
    /// scan and the conv the gradients dt_proj's and in_proj's backward multiply with (CudaBackend.Bf16Activations), instead
    /// of F32 tensors that the products round: the same products, so the loss and
    /// every gradient agree up to the order of atomic sums (the scan's, which varies by run) — with and without the rerun of
    /// the mixer in the backward (Recompute).</summary>
    [Fact]
    public void Bf16ActivationsGiveTheStepOfRoundedF32Activations()
    {
        var gpu = Gpu;
        var (model, ids) = SmallModel(layers: 2, seed: 4, idsSeed: 33, batch: 3, length: 70);
        using var owned = model;
        var results = new List<(float Loss, float[][] Grads)>();
        try
        {
            gpu.MatmulPrecision = MatmulPrecision.Bf16;
            foreach (var (narrow, recompute) in new[] { (false, false), (true, false), (true, true) })
            {
                gpu.Bf16Activations = narrow;
                model.Recompute = recompute;
                using var scope = new TensorScope();
                var loss = model.Loss(ids);
                loss.Backward();
                results.Add((loss.Item(), model.Parameters().Select(p => p.Grad!.ToFloatArray()).ToArray()));
                model.ZeroGrad();
            }
        }
        finally
        {
            gpu.MatmulPrecision = MatmulPrecision.F32;
            gpu.Bf16Activations = true;
            model.Recompute = false;
        }
        var names = model.Parameters().Select(p => p.Name).ToArray();
        foreach (var (loss, grads) in results.Skip(1))
        {
            Assert.True(Math.Abs(loss - results[0].Loss) <= 1e-6 * Math.Abs(results[0].Loss), $"loss {loss:G9} vs {results[0].Loss:G9}");
            for (int k = 0; k < grads.Length; k++)
                Close(Tensor.From(results[0].Grads[k], grads[k].Length), Tensor.From(grads[k], grads[k].Length), 1e-4, $"{names[k]}'s gradient");
        }
    }

    [Fact]
    public void Bf16TrainingKeepsF32MasterWeightsAndLearns()
    {
        var gpu = Gpu;
        var config = new MambaConfig { DModel = 32, NLayer = 2, DState = 8, VocabSize = 17 };
        using var model = new MambaLM(config, seed: 9);
        model.To(Cuda);
        using var optimizer = new Training.AdamW(model, 3e-3f);
        var rng = new Random(32);
        // a learnable sequence: each token is the previous one + 1 (mod vocabulary)
        var ids = new long[4 * 24];
        for (int b = 0; b < 4; b++) { long t = rng.Next(config.VocabSize); for (int i = 0; i < 24; i++) ids[b * 24 + i] = (t + i) % config.VocabSize; }
        var losses = new List<double>();
        try
        {
            gpu.MatmulPrecision = MatmulPrecision.Bf16;
            for (int step = 0; step < 30; step++)
            {
                using var scope = new TensorScope();
                var loss = model.Loss(Tensor.From(ids, 4, 24));
                losses.Add(loss.Item());
                loss.Backward();
                optimizer.Step();
                model.ZeroGrad();
            }
        }
        finally { gpu.MatmulPrecision = MatmulPrecision.F32; }
        Assert.All(model.Parameters(), p => Assert.Equal(DType.F32, p.DType));
        Assert.All(optimizer.State(), s => Assert.Equal(DType.F32, s.Tensor.DType));
        Assert.All(losses, l => Assert.True(double.IsFinite(l)));
        Assert.True(losses[^1] < 0.5 * losses[0], $"loss {losses[0]:F3} → {losses[^1]:F3}");
    }
}
