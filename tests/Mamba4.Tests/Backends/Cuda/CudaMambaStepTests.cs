using Mamba4.Autograd;
using Mamba4.Inference;
using Mamba4.Models;
using Mamba4.Ops;
using Mamba4.Tensors;
using static Mamba4.Tests.CudaTest;

namespace Mamba4.Tests;

/// <summary>
/// The fused decoding step on the GPU (Kernels/mamba_step.cu) against its CPU reference twin and against the unfused
/// GPU step: the layer's output and both states, F32 and BF16 weights, the fused small-batch kernels (≤ 8 streams, rows
/// read 16 bytes at a time or one by one; the persistent layer kernel with its grid barriers and the four kernels it
/// replaces) and the cuBLAS path of larger batches; the head's logits and greedy ids.
/// </summary>
[Trait("Category", "Cuda")]
[Collection("Cuda")]
public class CudaMambaStepTests
{
    /// <summary>Every projection of the model made BF16 (or F16) in place (as loading with --dtype bf16 does).</summary>
    private static void Narrow(MambaLM model, DType type = DType.BF16)
    {
        foreach (var layer in model.Backbone.Layers.Items)
            foreach (var lin in layer.Mixer.Linears) lin.Weight.ReplaceWith(lin.Weight.To(type));
        model.LmHead.ReplaceWith(model.LmHead.To(type));
        foreach (var p in model.Parameters()) p.RequiresGrad = false;
    }

    /// <summary>Beyond 8 streams with 2-byte weights, the step's RMSNorm writes x̂ in the weight's type for cuBLAS: the very
    /// F32 values of <see cref="Backends.Cuda.CudaBackend.RmsNormForward"/>, rounded to nearest even (4 values at a time
    /// for rows of multiples of 4, else one at a time).</summary>
    [Theory]
    [InlineData(64, DType.BF16)]
    [InlineData(38, DType.BF16)]
    [InlineData(64, DType.F16)]
    [InlineData(38, DType.F16)]
    public void RmsNormWritesTheNarrowProductInputAsItsF32OutputRounded(int d, DType type)
    {
        var gpu = Gpu;
        using var scope = new TensorScope();
        var rng = new Random(3);
        var x = Random(rng, 13, d).To(Cuda);
        var w = Random(rng, d).To(Cuda);
        var f32 = Tensor.Empty(new Shape(13, d), DType.F32, Cuda);
        gpu.RmsNormForward(x, w, 1e-5f, f32, Tensor.Empty(new Shape(13), DType.F32, Cuda));
        var narrow = Tensor.Full(new Shape(13, d), float.NaN).To(type).To(Cuda);   // NaN where a value is not written
        gpu.RmsNormForwardAs(x, w, 1e-5f, narrow);
        Assert.Equal(f32.To(Device.Cpu).To(type).To(DType.F32).ToFloatArray(), narrow.To(Device.Cpu).To(DType.F32).ToFloatArray());
    }

    [Theory]
    [InlineData(64, 1, DType.F32, true)]    // d, e multiples of 8: 16-byte rows; one persistent kernel
    [InlineData(64, 1, DType.F32, false)]   // the four kernels
    [InlineData(36, 3, DType.F32, true)]    // d = 36: in_proj rows one weight at a time
    [InlineData(36, 3, DType.F32, false)]
    [InlineData(64, 8, DType.F32, true)]
    [InlineData(64, 13, DType.F32, true)]   // over 8 streams: cuBLAS in_proj / out_proj around the fused x_proj and scan
    [InlineData(64, 1, DType.BF16, true)]
    [InlineData(64, 8, DType.BF16, false)]
    [InlineData(36, 5, DType.BF16, true)]
    [InlineData(64, 13, DType.BF16, true)]
    [InlineData(36, 13, DType.F32, false)]  // r = 3 dt terms, one at a time in the wide scan of large batches
    [InlineData(64, 13, DType.F16, false)]  // F16 weights: RMSNorm, conv and scan write the products' inputs as F16
    [InlineData(36, 13, DType.BF16, false)] // rows of 36 weights (not 16-byte units) with BF16 inputs
    [InlineData(128, 13, DType.F32, false)] // r = 8, n = 16: the wide scan reads dt_proj, A, dbc and the state 16 bytes at a time
    [InlineData(128, 13, DType.BF16, false)]
    [InlineData(128, 13, DType.BF16, false, 24)]   // n = 24: 16 states' A read before the wait, 8 after
    [InlineData(64, 13, DType.F32, false, 6)]      // n = 6: one state at a time, the last group of 4 cut at n
    public void LayerStepMatchesTheCpuTwinAndTheUnfusedGpuStep(int dModel, int batch, DType weights, bool persistent, int dState = 16)
    {
        bool narrow = weights != DType.F32;   // BF16 or F16
        var backend = Gpu;
        backend.PersistentLayerStep = persistent;
        using var restore = new Restore(() => backend.PersistentLayerStep = false);
        var (cpuModel, cpuState) = MambaStepTests.RandomModel(dModel, batch, 5, dState: dState);
        var (gpuModel, gpuState) = MambaStepTests.RandomModel(dModel, batch, 5, Cuda, dState);
        var unfusedState = MambaStepTests.RandomState(gpuModel, batch, 5);
        if (narrow) { Narrow(cpuModel, weights); Narrow(gpuModel, weights); }
        using (cpuModel)
        using (gpuModel)
        using (cpuState)
        using (gpuState)
        using (unfusedState)
        using (GradMode.NoGrad())
        using (var scope = new TensorScope())
        {
            var h = MambaStepTests.RandomHidden(batch, dModel, 9);
            var hg = h.To(Cuda);
            for (int i = 0; i < 2; i++)   // two layers, two steps of the state
            {
                var block = cpuModel.Backbone.Layers[i];
                var gblock = gpuModel.Backbone.Layers[i];
                var cpu = F.MambaStep(h, ((Nn.MambaMixer)block.Mixer).StepWeights(block.Norm), cpuState.Layers[i].ConvState, cpuState.Layers[i].SsmState);
                var gpu = F.MambaStep(hg, ((Nn.MambaMixer)gblock.Mixer).StepWeights(gblock.Norm), gpuState.Layers[i].ConvState, gpuState.Layers[i].SsmState);
                var unfused = gblock.Step(hg, unfusedState.Layers[i]);
                // F32: summation order only. BF16: the same narrow weights; the CPU and the fused kernels (≤ 8 streams) keep
                // x̂, u and y in F32, while cuBLAS (the unfused GPU path, and the fused step's products beyond 8 streams)
                // rounds them to BF16 first (CudaNarrowWeightTests allows 2e-2 for that).
                double twin = !narrow ? 2e-5 : batch <= 8 ? 1e-4 : 3e-2;
                Close(cpu, gpu, twin, $"layer {i} output vs the CPU twin");
                Close(unfused, gpu, narrow ? 3e-2 : 2e-5, $"layer {i} output vs the unfused GPU step");
                Close(cpuState.Layers[i].SsmState, gpuState.Layers[i].SsmState, twin, $"layer {i} ssm_state");
                Close(cpuState.Layers[i].ConvState, gpuState.Layers[i].ConvState, twin, $"layer {i} conv_state");
                Close(unfusedState.Layers[i].ConvState, gpuState.Layers[i].ConvState, narrow ? 3e-2 : 2e-5, $"layer {i} conv_state vs unfused");
                (h, hg) = (cpu, gpu);
            }
        }
    }

    [Theory]
    [InlineData(1, false)]
    [InlineData(5, false)]
    [InlineData(13, false)]
    [InlineData(1, true)]
    [InlineData(13, true)]
    public void HeadStepMatchesTheCpuAndItsIdsAreTheArgMaxOfItsLogits(int batch, bool bf16)
    {
        _ = Gpu;
        var (cpuModel, cpuState) = MambaStepTests.RandomModel(64, 1, 4);
        var (gpuModel, gpuState) = MambaStepTests.RandomModel(64, 1, 4, Cuda);
        if (bf16) { Narrow(cpuModel); Narrow(gpuModel); }
        using (cpuModel)
        using (gpuModel)
        using (cpuState)
        using (gpuState)
        using (GradMode.NoGrad())
        using (var scope = new TensorScope())
        {
            var h = MambaStepTests.RandomHidden(batch, 64, 2);
            var idsGpu = Tensor.From(Enumerable.Repeat(-7L, batch).ToArray(), batch).To(Cuda);
            var cpu = F.MambaHeadStep(h, cpuModel.Backbone.NormF.Weight, 1e-5f, cpuModel.LmHead);
            var gpu = F.MambaHeadStep(h.To(Cuda), gpuModel.Backbone.NormF.Weight, 1e-5f, gpuModel.LmHead, idsGpu);
            Close(cpu, gpu, !bf16 ? 2e-5 : batch <= 8 ? 1e-4 : 2e-2, "logits");   // beyond 8 streams cuBLAS rounds x̂ to BF16
            var logits = gpu.ToFloatArray();
            var chosen = idsGpu.ToInt64Array();
            for (int r = 0; r < batch; r++) Assert.Equal(Generator.ArgMax(logits.AsSpan(r * 53, 53)), chosen[r]);
        }
    }

    /// <summary>The head at a width of two passes a row (1,040 = 130 units of 8 weights; a lane loads 96 units a pass) and a
    /// vocabulary of many blocks, each warp several groups of rows: the logits against a float64 loop written here, and
    /// a maximum tied between two rows in different blocks (stream b: rows 100 + b and 5000 + b hold the same weights,
    /// 0.05·h_b) taken at the lower one, by the single-stream and the 8-stream kernels, twice (the count of finished
    /// blocks starts again at 0).
    /// Widths 36 and 1,036 (not a multiple of 8) take the kernels' unvectorised path.</summary>
    [Theory]
    [InlineData(1, false, 1040)]
    [InlineData(1, true, 1040)]
    [InlineData(3, false, 1040)]
    [InlineData(3, true, 1040)]
    [InlineData(1, false, 36)]
    [InlineData(1, true, 1036)]
    [InlineData(3, false, 1036)]
    [InlineData(3, true, 36)]
    public void HeadStepOverManyBlocksTakesTheLowestOfTiedMaxima(int batch, bool bf16, int d)
    {
        _ = Gpu;
        const int vocab = 6007;
        using var scope = new TensorScope();
        using var noGrad = GradMode.NoGrad();
        var h = MambaStepTests.RandomHidden(batch, d, 3);
        var head = MambaStepTests.RandomHidden(vocab, d, 4);
        var hv = h.AsSpan<float>();
        var w = head.AsSpan<float>();
        for (int i = 0; i < w.Length; i++) w[i] *= 0.05f;
        for (int b = 0; b < batch; b++)
            for (int i = 0; i < d; i++) w[(100 + b) * d + i] = w[(5000 + b) * d + i] = 0.05f * hv[b * d + i];
        if (bf16) head = head.To(DType.BF16);
        var seen = head.To(DType.F32).ToFloatArray();   // the weights as the kernel reads them (BF16: rounded)
        var expected = new float[batch * vocab];
        for (int b = 0; b < batch; b++)
        {
            double ss = 0;
            for (int i = 0; i < d; i++) ss += (double)hv[b * d + i] * hv[b * d + i];
            double r = 1 / Math.Sqrt(ss / d + 1e-5);
            for (int row = 0; row < vocab; row++)
            {
                double dot = 0;
                for (int i = 0; i < d; i++) dot += hv[b * d + i] * r * seen[(long)row * d + i];
                expected[b * vocab + row] = (float)dot;
            }
        }
        var gpuHead = head.To(Cuda);
        for (int round = 0; round < 2; round++)
        {
            var ids = Tensor.From(Enumerable.Repeat(-7L, batch).ToArray(), batch).To(Cuda);
            var logits = F.MambaHeadStep(h.To(Cuda), Tensor.Ones(new Shape(d), Cuda), 1e-5f, gpuHead, ids);
            Close(Tensor.From(expected, batch, vocab), logits, 1e-5, "logits");
            var got = logits.ToFloatArray();
            var chosen = ids.ToInt64Array();
            for (int b = 0; b < batch; b++)
            {
                Assert.Equal(got[b * vocab + 100 + b], got[b * vocab + 5000 + b]);   // a tie, bit for bit
                Assert.Equal(100 + b, chosen[b]);
                Assert.Equal(Generator.ArgMax(got.AsSpan(b * vocab, vocab)), chosen[b]);
            }
        }
    }

    /// <summary>8 streams whose x̂ fill exactly the device's opt-in shared memory: the head keeps 3 KB of static shared
    /// memory for its arg-max (32 warps × 8 streams × value, index, bad index), so its block cannot also take that much
    /// dynamic memory (the launch would fail): it must take the cuBLAS path, and still match the CPU.</summary>
    [Fact]
    public void AHeadWhoseStreamsFillTheOptInSharedMemoryRunsThroughCublas()
    {
        var gpu = Gpu;
        const string file = Mamba4.Backends.Cuda.Kernels.MambaStep.File;
        Assert.True(gpu.DynamicSharedLimit(file, Mamba4.Backends.Cuda.Kernels.MambaStep.MambaStepHeadF32) <= gpu.MaxSharedMemoryPerBlock - 32 * 8 * 12);
        const int batch = 8, vocab = 53;
        int d = gpu.MaxSharedMemoryPerBlock / (batch * sizeof(float));
        using var scope = new TensorScope();
        using var noGrad = GradMode.NoGrad();
        var h = MambaStepTests.RandomHidden(batch, d, 5);
        var head = MambaStepTests.RandomHidden(vocab, d, 6);
        var cpu = F.MambaHeadStep(h, Tensor.Ones(new Shape(d)), 1e-5f, head);
        var ids = Tensor.From(new long[batch], batch).To(Cuda);
        var logits = F.MambaHeadStep(h.To(Cuda), Tensor.Ones(new Shape(d), Cuda), 1e-5f, head.To(Cuda), ids);
        Close(cpu, logits, 1e-4, "logits");
        var got = logits.ToFloatArray();
        var chosen = ids.ToInt64Array();
        for (int b = 0; b < batch; b++) Assert.Equal(Generator.ArgMax(got.AsSpan(b * vocab, vocab)), chosen[b]);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(13)]
    public void HeadStepMarksARowWithANonFiniteLogit(int batch)
    {
        _ = Gpu;
        using var scope = new TensorScope();
        using var noGrad = GradMode.NoGrad();
        var head = MambaStepTests.RandomHidden(300, 64, 2);
        head.AsSpan<float>()[211 * 64] = float.PositiveInfinity;
        var ids = Tensor.From(new long[batch], batch).To(Cuda);
        F.MambaHeadStep(MambaStepTests.RandomHidden(batch, 64, 1).To(Cuda), Tensor.Ones(new Shape(64), Cuda), 1e-5f, head.To(Cuda), ids);
        Assert.All(ids.ToInt64Array(), id => Assert.Equal(-1, id));
    }

    [Theory]
    [InlineData(true, true)]     // each kernel started early (programmatic dependent launch), as decoding runs; a layer one kernel
    [InlineData(false, true)]    // plain launches
    [InlineData(true, false)]    // four kernels a layer
    public void FusedModelStepEqualsTheUnfusedStepOverManyTokens(bool early, bool persistent)
    {
        var gpu = Gpu;
        var (model, fusedState) = MambaStepTests.RandomModel(64, 2, 3, Cuda);
        var unfusedState = MambaStepTests.RandomState(model, 2, 3);
        gpu.ProgrammaticLaunch = early;
        gpu.PersistentLayerStep = persistent;
        using var restore = new Restore(() => (gpu.ProgrammaticLaunch, gpu.PersistentLayerStep) = (true, false));
        using (model)
        using (fusedState)
        using (unfusedState)
        using (GradMode.NoGrad())
        {
            Assert.True(model.UsesFusedStep);
            var rng = new Random(4);
            for (int t = 0; t < 40; t++)
            {
                using var scope = new TensorScope();
                var ids = Tensor.From(new long[] { rng.Next(53), rng.Next(53) }, 2);
                var fused = model.Step(ids, fusedState);
                var h = model.Backbone.Embeddings.Forward(ids.To(Cuda));
                for (int i = 0; i < 2; i++) h = model.Backbone.Layers[i].Step(h, unfusedState.Layers[i]);
                var unfused = F.Linear(model.Backbone.NormF.Forward(h), model.LmHead);
                Close(unfused, fused, 1e-4, $"logits at step {t}");
            }
        }
    }

    [Theory]
    [InlineData(1, false, false)]   // four kernels a layer; the single-stream head
    [InlineData(1, true, false)]    // one persistent kernel a layer (its grid barriers replayed by the graph)
    [InlineData(3, false, false)]   // the 8-stream head
    [InlineData(1, false, true)]    // BF16 weights
    [InlineData(3, false, true)]
    public void GreedyGraphFeedsItsArgMaxBackAndMatchesTheHostArgMax(int batch, bool persistent, bool bf16)
    {
        var gpu = Gpu;
        gpu.PersistentLayerStep = persistent;
        using var restore = new Restore(() => gpu.PersistentLayerStep = false);
        var (model, state) = MambaStepTests.RandomModel(64, batch, 6, Cuda);
        if (bf16) Narrow(model);
        var plain = MambaStepTests.RandomState(model, batch, 6);
        using (model)
        using (state)
        using (plain)
        using (GradMode.NoGrad())
        {
            var first = Enumerable.Range(0, batch).Select(b => 5L + b).ToArray();
            using (new TensorScope()) model.Step(Tensor.From(first, batch), state);
            using (new TensorScope()) model.Step(Tensor.From(first, batch), plain);
            using var graph = StepGraph.TryCreate(model, state, batch);
            Assert.NotNull(graph);
            Assert.True(graph!.GreedyOnDevice);
            var next = Enumerable.Range(0, batch).Select(b => 9L + 7 * b).ToArray();
            for (int t = 0; t < 20; t++)
            {
                using var scope = new TensorScope();
                var logits = model.Step(Tensor.From(next, batch), plain).ToFloatArray();
                int vocab = logits.Length / batch;
                var chosen = graph.StepGreedy(next);
                for (int b = 0; b < batch; b++) Assert.Equal(Generator.ArgMax(logits.AsSpan(b * vocab, vocab)), chosen[b]);
                next = chosen.ToArray();
            }
        }
    }

    private sealed class Restore(Action undo) : IDisposable
    {
        public void Dispose() => undo();
    }
}
