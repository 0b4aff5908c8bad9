using Mamba4.Backends;
using Mamba4.Tensors;
using static Mamba4.Tests.CudaTest;
using Mamba4.Ops;

namespace Mamba4.Tests;

/// <summary>Every CUDA kernel against the CPU backend on random inputs (odd sizes included).</summary>
[Trait("Category", "Cuda")]
[Collection("Cuda")]
public class CudaOpsTests
{
    [Theory]
    [InlineData(DType.F32)]
    [InlineData(DType.F64)]
    [InlineData(DType.BF16)]
    [InlineData(DType.F16)]
    [InlineData(DType.I32)]
    [InlineData(DType.I64)]
    [InlineData(DType.U8)]
    public void CopiesRoundTripEveryDTypeAndFill(DType dtype)
    {
        _ = Gpu;
        using var scope = new TensorScope();
        var rng = new Random(1);
        var x = Uniform(rng, 0, 100, 3, 1000).To(dtype);
        var g = x.To(Cuda);
        Assert.Equal(Cuda, g.Device);
        Assert.Equal(x.ToDoubleArray(), g.ToDoubleArray());
        Assert.Equal(x.ToDoubleArray(), g.Clone().To(Device.Cpu).ToDoubleArray());
        var converted = x.To(DType.F32, Cuda);
        Assert.Equal(x.ToDoubleArray(), converted.ToDoubleArray());
        var f = Tensor.Empty(new Shape(5, 7), dtype, Cuda);
        f.Backend.Fill(f, 3f);
        Assert.All(f.ToDoubleArray(), v => Assert.Equal(3.0, v));
        // CopyFrom host → device and device → device
        var target = Tensor.Zeros(x.Shape, dtype, Cuda);
        target.CopyFrom(x);
        Assert.Equal(x.ToDoubleArray(), target.ToDoubleArray());
    }

    [Fact]
    public void LargeCopiesCrossTheStagingBuffersAndTheAllocatorReuses()
    {
        var gpu = Gpu;
        var rng = new Random(2);
        using var x = Random(rng, 5_000_003);   // > two 8 MB staging buffers
        using (var g = x.To(Cuda)) Assert.Equal(x.ToFloatArray(), g.ToFloatArray());
        long before = gpu.Allocator.DeviceAllocations;
        for (int i = 0; i < 3; i++) using (var g = x.To(Cuda)) { }
        Assert.Equal(before, gpu.Allocator.DeviceAllocations);
        Assert.True(gpu.Allocator.PoolHits >= 3);
        Assert.True(gpu.Allocator.PeakBytesInUse >= x.ByteLength);
    }

    [Fact]
    public void CopyColumnsAndConcat()
    {
        _ = Gpu;
        using var scope = new TensorScope();
        var rng = new Random(3);
        var src = Random(rng, 13, 29);
        var (c, g) = Outputs(13, 40);
        Cpu.Fill(c, 0); g.Backend.Fill(g, 0);
        Cpu.CopyColumns(src, 5, c, 11, 17);
        g.Backend.CopyColumns(src.To(Cuda), 5, g, 11, 17);
        Close(c, g, 0, "CopyColumns");
        var parts = F.SplitLastAxis(src.To(Cuda), 4, 20, 5);
        Close(src, F.ConcatLastAxis(parts), 0, "split + concat");
    }

    [Fact]
    public void ElementwiseActivationsGateAndDropout()
    {
        var gpu = Gpu;
        using var scope = new TensorScope();
        var rng = new Random(4);
        var a = Uniform(rng, -30, 30, 7, 333);
        var b = Random(rng, 7, 333);
        var (ga, gb) = (a.To(Cuda), b.To(Cuda));
        void Check(string what, Action<IBackend, Tensor, Tensor, Tensor> kernel, double tol = 1e-6)
        {
            var (c, g) = Outputs(7, 333);
            kernel(Cpu, a, b, c);
            kernel(gpu, ga, gb, g);
            Close(c, g, tol, what);
        }
        Check("add", (k, x, y, o) => k.Add(x, y, o));
        Check("mul", (k, x, y, o) => k.Mul(x, y, o));
        Check("scale", (k, x, _, o) => k.Scale(x, -2.5f, o));
        Check("add in place", (k, x, y, o) => { k.Scale(x, 1f, o); k.AddInPlace(o, y, 0.75f); });
        foreach (var kind in new[] { Activation.SiLU, Activation.Gelu, Activation.Softplus })
        {
            Check($"{kind} forward", (k, x, _, o) => k.ActivationForward(kind, x, o), 1e-5);
            Check($"{kind} backward", (k, x, y, o) => k.ActivationBackward(kind, x, y, o), 1e-5);
        }
        var small = Uniform(rng, -5, 5, 7, 333);
        var gs = small.To(Cuda);
        foreach (var (kind, fwd) in new[] { (Activation.Exp, true), (Activation.Exp, false) })
        {
            var (c, g) = Outputs(7, 333);
            if (fwd) { Cpu.ActivationForward(kind, small, c); gpu.ActivationForward(kind, gs, g); }
            else { Cpu.ActivationBackward(kind, small, b, c); gpu.ActivationBackward(kind, gs, gb, g); }
            Close(c, g, 1e-5, $"exp {(fwd ? "forward" : "backward")}");
        }
        Check("gate forward", (k, x, y, o) => k.GateForward(y, x, o), 1e-5);
        var (dyc, dyg) = Outputs(7, 333);
        var (dzc, dzg) = Outputs(7, 333);
        Cpu.GateBackward(b, a, b, dyc, dzc);
        gpu.GateBackward(gb, ga, gb, dyg, dzg);
        Close(dyc, dyg, 1e-5, "gate dy");
        Close(dzc, dzg, 1e-5, "gate dz");

        // dropout: the same mask from the same seed
        var (yc, yg) = Outputs(7, 333);
        var mc = Tensor.Empty(a.Shape, DType.U8);
        var mg = Tensor.Empty(a.Shape, DType.U8, Cuda);
        Cpu.DropoutForward(a, 0.3f, 12345, yc, mc);
        gpu.DropoutForward(ga, 0.3f, 12345, yg, mg);
        Assert.Equal(mc.ToDoubleArray(), mg.ToDoubleArray());
        Close(yc, yg, 0, "dropout forward");
        var (dc, dg) = Outputs(7, 333);
        Cpu.DropoutBackward(b, mc, 0.3f, dc);
        gpu.DropoutBackward(gb, mg, 0.3f, dg);
        Close(dc, dg, 0, "dropout backward");
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(1000, 37)]
    [InlineData(20000, 3)]
    [InlineData(3, 2050)]
    public void SumSumRowsAndAddRowVector(int rows, int cols)
    {
        var gpu = Gpu;
        using var scope = new TensorScope();
        var rng = new Random(5);
        var x = Random(rng, rows, cols);
        var gx = x.To(Cuda);
        var (sc, sg) = Outputs(1);
        Cpu.Sum(x, sc);
        gpu.Sum(gx, sg);
        Close(sc, sg, 1e-6 * Math.Max(1, Math.Sqrt(rows * cols)), "sum");
        var init = Random(rng, cols);
        foreach (var accumulate in new[] { false, true })
        {
            var c = init.Clone();
            var g = init.To(Cuda);
            Cpu.SumRows(x, c, accumulate);
            gpu.SumRows(gx, g, accumulate);
            Close(c, g, 1e-5, $"sum rows (accumulate {accumulate})");
        }
        var yc = x.Clone();
        var yg = x.To(Cuda);
        Cpu.AddRowVector(yc, init);
        gpu.AddRowVector(yg, init.To(Cuda));
        Close(yc, yg, 1e-6, "add row vector");
    }

    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(17, 33, 5)]
    [InlineData(64, 128, 96)]
    [InlineData(3, 7, 1)]
    [InlineData(2, 513, 300)]
    public void GemmEveryTransposeAgreesWithCpu(int m, int n, int k)
    {
        var gpu = Gpu;
        using var scope = new TensorScope();
        var rng = new Random(6);
        foreach (var ta in new[] { false, true })
            foreach (var tb in new[] { false, true })
            {
                var a = ta ? Random(rng, k, m) : Random(rng, m, k);
                var b = tb ? Random(rng, n, k) : Random(rng, k, n);
                var init = Random(rng, m, n);
                foreach (var (alpha, beta) in new[] { (1f, 0f), (0.5f, -2f) })
                {
                    var c = init.Clone();
                    var g = init.To(Cuda);
                    Cpu.Gemm(a, ta, b, tb, c, alpha, beta);
                    gpu.Gemm(a.To(Cuda), ta, b.To(Cuda), tb, g, alpha, beta);
                    Close(c, g, 1e-5, $"gemm {m}x{n}x{k} transA {ta} transB {tb} alpha {alpha} beta {beta}");
                }
            }
    }

    [Theory]
    [InlineData(DType.I64)]
    [InlineData(DType.I32)]
    public void EmbeddingForwardBackwardAndBadIds(DType idType)
    {
        var gpu = Gpu;
        using var scope = new TensorScope();
        var rng = new Random(7);
        var w = Random(rng, 50, 24);
        var ids = Tensor.From(Enumerable.Range(0, 300).Select(_ => (long)rng.Next(50)).ToArray(), 20, 15).To(idType);
        var gid = ids.To(Cuda);
        var (yc, yg) = Outputs(20, 15, 24);
        Cpu.EmbeddingForward(w, ids, yc);
        gpu.EmbeddingForward(w.To(Cuda), gid, yg);
        Close(yc, yg, 0, "embedding forward");
        var dy = Random(rng, 20, 15, 24);
        var dc = Tensor.Zeros(w.Shape);
        var dg = Tensor.Zeros(w.Shape, DType.F32, Cuda);
        Cpu.EmbeddingBackward(dy, ids, dc, 3);
        gpu.EmbeddingBackward(dy.To(Cuda), gid, dg, 3);
        Close(dc, dg, 1e-6, "embedding backward");
        var bad = Tensor.From([1L, 50L, 2L], 3).To(idType).To(Cuda);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => gpu.EmbeddingForward(w.To(Cuda), bad, Tensor.Empty(new Shape(3, 24), DType.F32, Cuda)));
        Assert.Contains("id 50 at position 1", e.Message);
    }

    [Theory]
    [InlineData(1, 64, true)]
    [InlineData(37, 768, true)]
    [InlineData(200, 33, false)]
    public void LayerNormAndRmsNorm(int rows, int d, bool withBias)
    {
        var gpu = Gpu;
        using var scope = new TensorScope();
        var rng = new Random(8);
        var x = Uniform(rng, -3, 3, rows, d);
        var w = Random(rng, d);
        var b = withBias ? Random(rng, d) : null;
        var dy = Random(rng, rows, d);
        var (gx, gw, gb, gdy) = (x.To(Cuda), w.To(Cuda), b?.To(Cuda), dy.To(Cuda));

        var (yc, yg) = Outputs(rows, d);
        var (mc, mg) = Outputs(rows);
        var (rc, rg) = Outputs(rows);
        Cpu.LayerNormForward(x, w, b, 1e-5f, yc, mc, rc);
        gpu.LayerNormForward(gx, gw, gb, 1e-5f, yg, mg, rg);
        Close(yc, yg, 1e-5, "layernorm y");
        Close(mc, mg, 1e-5, "layernorm mean");
        Close(rc, rg, 1e-5, "layernorm rstd");
        var (dxc, dxg) = Outputs(rows, d);
        var (dwc, dwg) = Outputs(d);
        var (dbc, dbg) = Outputs(d);
        Cpu.LayerNormBackward(dy, x, w, mc, rc, dxc, dwc, withBias ? dbc : null);
        gpu.LayerNormBackward(gdy, gx, gw, mg, rg, dxg, dwg, withBias ? dbg : null);
        Close(dxc, dxg, 1e-5, "layernorm dx");
        Close(dwc, dwg, 1e-5, "layernorm dw");
        if (withBias) Close(dbc, dbg, 1e-5, "layernorm db");

        Cpu.RmsNormForward(x, w, 1e-5f, yc, rc);
        gpu.RmsNormForward(gx, gw, 1e-5f, yg, rg);
        Close(yc, yg, 1e-5, "rmsnorm y");
        Close(rc, rg, 1e-5, "rmsnorm rstd");
        // y in BF16 (the operand of BF16 products): the F32 y rounded to nearest even, bit for bit, and the same rstd
        var y16 = Tensor.Empty(new Shape(rows, d), DType.BF16, Cuda);
        var r16 = Tensor.Empty(new Shape(rows), DType.F32, Cuda);
        gpu.RmsNormForward(gx, gw, 1e-5f, y16, r16);
        Assert.Equal(yg.To(DType.BF16).ToFloatArray(), y16.ToFloatArray());
        Assert.Equal(rg.ToFloatArray(), r16.ToFloatArray());
        Cpu.RmsNormBackward(dy, x, w, rc, dxc, dwc);
        gpu.RmsNormBackward(gdy, gx, gw, rg, dxg, dwg);
        Close(dxc, dxg, 1e-5, "rmsnorm dx");
        Close(dwc, dwg, 1e-5, "rmsnorm dw");
        // added to dx's values (the residual stream's gradient): dx again on top of the dx just written, i.e. 2·dx
        Cpu.RmsNormBackward(dy, x, w, rc, dxc, dwc, accumulate: true);
        gpu.RmsNormBackward(gdy, gx, gw, rg, dxg, dwg, accumulate: true);
        Close(dxc, dxg, 1e-5, "rmsnorm dx (accumulated)");
    }

    [Theory]
    [InlineData(2, 1, 16, 4, true, true)]
    [InlineData(3, 50, 37, 2, false, true)]
    [InlineData(1, 333, 130, 3, true, false)]
    [InlineData(4, 17, 8, 4, false, false)]
    [InlineData(2, 300, 40, 8, true, true)]
    [InlineData(3, 70, 129, 1, true, true)]
    [InlineData(1, 45, 33, 5, true, false)]
    [InlineData(2, 3000, 1024, 4, true, true)]   // tiled on an H100 (132 multiprocessors): runs of 23 steps, 262 tiles
    [InlineData(1, 16384, 1536, 4, true, true)]  // the 130M prefill's conv: runs of 94 steps, 8 loads ahead
    public void CausalConv1dForwardBackward(int batch, int l, int d, int k, bool silu, bool bias)
    {
        CausalConv1dMatchesCpu(batch, l, d, k, silu, bias, tiled: false);
        CausalConv1dMatchesCpu(batch, l, d, k, silu, bias, tiled: true);
    }

    /// <summary>The per-element kernels, or the tiled ones (CudaBackend.TiledConv), against the CPU backend.</summary>
    private void CausalConv1dMatchesCpu(int batch, int l, int d, int k, bool silu, bool bias, bool tiled)
    {
        var gpu = Gpu;
        using var scope = new TensorScope();
        var rng = new Random(9);
        var x = Random(rng, batch, l, d);
        var w = Random(rng, d, 1, k);
        var b = bias ? Random(rng, d) : null;
        var dy = Random(rng, batch, l, d);
        var (gx, gw, gbias, gdy) = (x.To(Cuda), w.To(Cuda), b?.To(Cuda), dy.To(Cuda));
        var (yc, yg) = Outputs(batch, l, d);
        var (dxc, dxg) = Outputs(batch, l, d);
        var (dwc, dwg) = Outputs(d, 1, k);
        var (dbc, dbg) = Outputs(d);
        Cpu.CausalConv1dForward(x, w, b, silu, yc);
        Cpu.CausalConv1dBackward(x, w, b, silu, dy, dxc, dwc, bias ? dbc : null);
        try
        {
            gpu.TiledConv = tiled;
            gpu.CausalConv1dForward(gx, gw, gbias, silu, yg);
            gpu.CausalConv1dBackward(gx, gw, gbias, silu, gdy, dxg, dwg, bias ? dbg : null);
            // dx in BF16 (a product's operand: the _gbf16 kernels, or the per-element dx rounded): the F32 dx rounded, bit for bit
            var dx16 = Tensor.Empty(new Shape(batch, l, d), DType.BF16, Cuda);
            gpu.CausalConv1dBackward(gx, gw, gbias, silu, gdy, dx16, Tensor.Empty(new Shape(d, 1, k), DType.F32, Cuda), bias ? Tensor.Empty(new Shape(d), DType.F32, Cuda) : null);
            Assert.Equal(dxg.To(DType.BF16).ToFloatArray(), dx16.ToFloatArray());
            // y with its BF16 copy (x_proj's operand when no gradient is recorded): y unchanged, the copy y rounded, bit for bit
            var (y2, y16) = (Tensor.Empty(new Shape(batch, l, d), DType.F32, Cuda), Tensor.Empty(new Shape(batch, l, d), DType.BF16, Cuda));
            gpu.CausalConv1dForward(gx, gw, gbias, silu, y2, y16);
            Assert.Equal(yg.ToFloatArray(), y2.ToFloatArray());
            Assert.Equal(yg.To(DType.BF16).ToFloatArray(), y16.ToFloatArray());
        }
        finally { gpu.TiledConv = true; }
        Close(yc, yg, 1e-5, $"conv y{(tiled ? " (tiled)" : "")}");
        Close(dxc, dxg, 1e-5, $"conv dx{(tiled ? " (tiled)" : "")}");
        Close(dwc, dwg, 1e-5, $"conv dw{(tiled ? " (tiled)" : "")}");
        if (bias) Close(dbc, dbg, 1e-5, $"conv db{(tiled ? " (tiled)" : "")}");
    }

    /// <summary>The conv state from a sequence's last inputs (fewer inputs than slots too) and back to rows: equal to the CPU's, exactly.</summary>
    [Theory]
    [InlineData(2, 9, 37, 3)]
    [InlineData(3, 2, 16, 3)]
    [InlineData(1, 1, 5, 7)]
    public void CausalConv1dStateToAndFromRows(int batch, int l, int d, int w)
    {
        _ = Gpu;
        using var scope = new TensorScope();
        var x = Random(new Random(5), batch, l, d);
        var (sc, sg) = (Tensor.Full(new Shape(batch, d, w), 9f), Tensor.Full(new Shape(batch, d, w), 9f, Cuda));
        F.CausalConv1dSaveState(x, sc);
        F.CausalConv1dSaveState(x.To(Cuda), sg);
        Assert.Equal(sc.ToFloatArray(), sg.ToFloatArray());
        Assert.Equal(F.CausalConv1dStateRows(sc).ToFloatArray(), F.CausalConv1dStateRows(sg).ToFloatArray());
    }

    [Theory]
    [InlineData(1, 8, 4, true, true)]
    [InlineData(3, 37, 16, true, false)]
    [InlineData(2, 24, 5, false, true)]
    public void RecurrentStepKernels(int batch, int d, int n, bool selective, bool softplus)
    {
        var gpu = Gpu;
        using var scope = new TensorScope();
        var rng = new Random(10);
        var x = Random(rng, batch, d);
        var state = Random(rng, batch, d, 3);
        var w = Random(rng, d, 1, 4);
        var bias = Random(rng, d);
        var gstate = state.To(Cuda);
        var (yc, yg) = Outputs(batch, d);
        Cpu.CausalConv1dStep(x, state, w, bias, true, yc);
        gpu.CausalConv1dStep(x.To(Cuda), gstate, w.To(Cuda), bias.To(Cuda), true, yg);
        Close(yc, yg, 1e-6, "conv step y");
        Close(state, gstate, 0, "conv step state");

        var u = Random(rng, batch, d);
        var delta = Uniform(rng, -3, 0.5, batch, d);
        var a = Uniform(rng, -4, -0.5, d, n);
        var bm = selective ? Random(rng, batch, n) : Random(rng, d, n);
        var cm = selective ? Random(rng, batch, n) : Random(rng, d, n);
        var dskip = Random(rng, d);
        var z = Random(rng, batch, d);
        var h = Random(rng, batch, d, n);
        var gh = h.To(Cuda);
        Cpu.SelectiveScanStep(u, delta, a, bm, cm, dskip, z, bias, softplus, selective, h, yc);
        gpu.SelectiveScanStep(u.To(Cuda), delta.To(Cuda), a.To(Cuda), bm.To(Cuda), cm.To(Cuda), dskip.To(Cuda), z.To(Cuda), bias.To(Cuda),
            softplus, selective, gh, yg);
        Close(yc, yg, 1e-5, "scan step y");
        Close(h, gh, 1e-5, "scan step state");
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(37, 1000)]
    [InlineData(5, 50280)]
    public void CrossEntropyAndLogSoftmax(int rows, int v)
    {
        var gpu = Gpu;
        using var scope = new TensorScope();
        var rng = new Random(11);
        var x = Uniform(rng, -10, 10, rows, v);
        var t = Tensor.From(Enumerable.Range(0, rows).Select(i => i % 3 == 2 ? -100L : rng.Next(v)).ToArray(), rows);
        var (gx, gt) = (x.To(Cuda), t.To(Cuda));
        var (lc, lg) = Outputs(rows);
        var (sc, sg) = Outputs(rows);
        Cpu.CrossEntropyForward(x, t, -100, lc, sc);
        gpu.CrossEntropyForward(gx, gt, -100, lg, sg);
        Close(lc, lg, 1e-5, "cross-entropy losses");
        Close(sc, sg, 1e-6, "cross-entropy lse");
        var (lg2, sg2) = (Outputs(rows).Item2, Outputs(rows).Item2);   // targets checked on the host: no device check, same values
        gpu.CrossEntropyForward(gx, gt, -100, lg2, sg2, targetsChecked: true);
        Close(lc, lg2, 1e-5, "cross-entropy losses (targets checked)");
        Close(sc, sg2, 1e-6, "cross-entropy lse (targets checked)");
        var (dc, dg) = Outputs(rows, v);
        Cpu.CrossEntropyBackward(x, t, -100, sc, 0.25f, dc);
        gpu.CrossEntropyBackward(gx, gt, -100, sg, 0.25f, dg);
        Close(dc, dg, 1e-5, "cross-entropy dlogits");
        // written in BF16 (the operand of the head's BF16 products): the GPU's own F32 dlogits rounded to nearest even
        var dg16 = Tensor.Empty(new Shape(rows, v), DType.BF16, Cuda);
        gpu.CrossEntropyBackward(gx, gt, -100, sg, 0.25f, dg16);
        Assert.Equal(dg.To(Device.Cpu).To(DType.BF16).To(DType.F32).ToFloatArray(), dg16.To(Device.Cpu).To(DType.F32).ToFloatArray());
        var (yc, yg) = Outputs(rows, v);
        Cpu.LogSoftmaxForward(x, yc);
        gpu.LogSoftmaxForward(gx, yg);
        Close(yc, yg, 1e-6, "log-softmax");
        var dy = Random(rng, rows, v);
        Cpu.LogSoftmaxBackward(yc, dy, dc);
        gpu.LogSoftmaxBackward(yg, dy.To(Cuda), dg);
        Close(dc, dg, 1e-5, "log-softmax backward");
        var bad = Tensor.From([v + 3L], 1).To(Cuda);
        var e = Assert.Throws<ArgumentException>(() => gpu.CrossEntropyForward(x.Slice(0, 1).To(Cuda), bad, -100, lg.Slice(0, 1), sg.Slice(0, 1)));
        Assert.Contains($"target {v + 3}", e.Message);
    }

    [Theory]
    [InlineData(2, 1, 2, 8, false)]
    [InlineData(2, 50, 2, 32, false)]
    [InlineData(3, 40, 1, 64, true)]
    [InlineData(1, 70, 4, 16, true)]
    public void AttentionForwardBackward(int batch, int l, int heads, int dh, bool padded)
    {
        var gpu = Gpu;
        using var scope = new TensorScope();
        var rng = new Random(12);
        int width = heads * dh;
        var q = Random(rng, batch, l, width);
        var k = Random(rng, batch, l, width);
        var v = Random(rng, batch, l, width);
        var dy = Random(rng, batch, l, width);
        Tensor? pad = null;
        if (padded)
        {
            var ids = new long[batch * l];
            for (int b = 0; b < batch; b++)
                for (int j = 0; j < l; j++) ids[b * l + j] = b == 0 ? (j < 5 ? 0 : 1 + j) : (j % 4 == 0 ? 0 : 1 + j);   // row 0: padded prefix
            pad = Tensor.From(ids, batch, l);
        }
        var (gq, gk, gv, gdy, gpad) = (q.To(Cuda), k.To(Cuda), v.To(Cuda), dy.To(Cuda), pad?.To(Cuda));
        var (yc, yg) = Outputs(batch, l, width);
        var (lc, lg) = Outputs(batch, heads, l);
        Cpu.AttentionForward(new AttentionSpec(heads, KeyPadding: pad), q, k, v, yc, lc);
        gpu.AttentionForward(new AttentionSpec(heads, KeyPadding: gpad), gq, gk, gv, yg, lg);
        Close(yc, yg, 1e-5, "attention y");
        Close(lc, lg, 1e-5, "attention lse");
        var (dqc, dqg) = Outputs(batch, l, width);
        var (dkc, dkg) = Outputs(batch, l, width);
        var (dvc, dvg) = Outputs(batch, l, width);
        Cpu.AttentionBackward(new AttentionSpec(heads, KeyPadding: pad), q, k, v, yc, lc, dy, dqc, dkc, dvc);
        gpu.AttentionBackward(new AttentionSpec(heads, KeyPadding: gpad), gq, gk, gv, yg, lg, gdy, dqg, dkg, dvg);
        Close(dqc, dqg, 1e-4, "attention dq");
        Close(dkc, dkg, 1e-4, "attention dk");
        Close(dvc, dvg, 1e-4, "attention dv");
    }
}
