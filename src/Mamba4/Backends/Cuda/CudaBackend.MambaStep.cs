using Mamba4.Backends.Cuda.Native;
using Mamba4.Tensors;

namespace Mamba4.Backends.Cuda;

// Kernels/mamba_step.cu: the fused Mamba-1 decoding step (Ops/MambaStep.cs has the math). Up to 8 streams (x̂, u or y
// of every stream in one block's shared memory) run four kernels a layer — in_proj with the RMSNorm and the conv, x_proj,
// the scan update with dt_proj, out_proj with the residual — or, with PersistentLayerStep, the four as phases of one
// persistent kernel (mamba_step_layer, grid-wide barriers between them); then the head (one stream: mamba_step_head1) with
// the greedy arg-max, finished by its last block; each weight read once, 16 bytes at a time, by one warp per row. Larger
// batches run the four products as cuBLAS GEMMs (the weights are then read once per GEMM) around the conv and scan
// kernels, and the arg-max over the logits; with BF16/F16 weights the RMSNorm, conv and scan write the GEMMs' inputs in
// that type themselves.
public sealed unsafe partial class CudaBackend
{
    private const int StepRows = 8;        // MAX_ROWS of mamba_step.cu
    private const int GemvThreads = 128;   // 4 warps, one weight row each at a time
    private const int LayerThreads = 256;  // mamba_step_layer: 8 warps

    /// <summary>Whether up to 8 streams run a layer as one persistent kernel rather than four. Off: on an H100 at the 130M
    /// shape it measured 0.700 ms a step against 0.604 (F32; docs/cuda-kernel-notes.md, "Decoding step": its 166 registers
    /// leave one block of 8 warps a multiprocessor, so each warp runs three in_proj rows one after another). Tests and
    /// benchmarks turn it on. It needs the GPU to itself: its grid barrier waits for every block, so blocks kept out by
    /// another context (other MPS clients, say) leave the others polling until the poll limit traps; a cooperative
    /// launch, which refuses such a grid, would be the safe form before it could be a default.</summary>
    internal bool PersistentLayerStep { get; set; }

    /// <summary>Whether batches over 8 streams with 2-byte weights write the cuBLAS products' inputs in F32 and convert them by
    /// a pass before each product, as before the kernels wrote them narrow (benchmarks compare the two in one run; off by default).</summary>
    internal bool ConvertProductInputs { get; set; }

    /// <summary>The bytes of <paramref name="weights"/> the persistent kernel asks L2 to hold ahead: all of them up to half the
    /// L2 (more would evict what the kernels between read, and the weights' own first lines before they are used), else that
    /// half. (The four-kernel step asking the same ahead — x_proj for W_out, the scan for the next W_in — was timed in
    /// session 11 at 0.99–1.00× and removed: docs/cuda-kernel-notes.md, "Decoding step", round 6.)</summary>
    private long L2Ahead(Tensor? weights) => weights is null ? 0 : Math.Min(weights.ByteLength, L2CacheBytes / 2);

    /// <summary>Two words, each zero between launches: mamba_step_layer's grid barrier (grid_barrier) and the head's count of
    /// finished blocks (last_block).</summary>
    private Storage? _stepCounters;
    private const int GridBarrierCounter = 0, HeadCounter = 1;

    public void MambaLayerStep(Tensor h, in MambaStepWeights w, Tensor convState, Tensor ssmState, Tensor output, Tensor? prefetch)
    {
        int batch = h.Shape[0], d = w.DModel, e = w.DInner, k = w.DConv, r = w.DtRank, n = w.DState, xRows = r + 2 * n;
        if (batch == 0) return;
        const string file = Kernels.MambaStep.File;
        string inProjKernel = StepKernel(w.InProj, Kernels.MambaStep.MambaStepInProjF32, Kernels.MambaStep.MambaStepInProjBf16, Kernels.MambaStep.MambaStepInProjF16);
        string xProjKernel = StepKernel(w.XProj, Kernels.MambaStep.MambaStepXProjF32, Kernels.MambaStep.MambaStepXProjBf16, Kernels.MambaStep.MambaStepXProjF16);
        string outProjKernel = StepKernel(w.OutProj, Kernels.MambaStep.MambaStepOutProjF32, Kernels.MambaStep.MambaStepOutProjBf16, Kernels.MambaStep.MambaStepOutProjF16);
        bool fused = Fits(inProjKernel, batch, d) && Fits(xProjKernel, batch, e) && Fits(outProjKernel, batch, e);
        using var xz = Tensor.Empty(new Shape(batch, 2 * e), DType.F32, Device);
        using var u = Tensor.Empty(new Shape(batch, e), DType.F32, Device);
        using var dbc = Tensor.Empty(new Shape(batch, xRows), DType.F32, Device);
        // y in out_proj's input type: F32 for the fused kernel; for cuBLAS, the weight's 2-byte type where it has one
        using var y = Tensor.Empty(new Shape(batch, e), fused ? DType.F32 : ProductInput(w.OutProj), Device);
        int layerShared = batch * Math.Max(d, e) * sizeof(float);
        if (fused && LayerKernel(w) is { } layer && LayerGrid(layer, layerShared, 2 * e) is var layerGrid and > 0)
        {
            LaunchEarly(file, layer, layerGrid, LayerThreads, layerShared,
                h, w.NormWeight, w.NormEps, w.InProj, w.InProjBias, convState, w.ConvWeight, w.ConvBias, xz, u, w.XProj, dbc,
                w.DtProj, w.DtBias, w.ALog, w.D, ssmState, y, w.OutProj, w.OutProjBias, output, StepCounter(GridBarrierCounter), prefetch, L2Ahead(prefetch),
                batch, d, e, k, r, n, Vec(w.InProj), Vec(w.XProj), Vec(w.OutProj));
            return;
        }
        if (fused)
        {
            LaunchEarly(file, inProjKernel, GemvGrid(2 * e), GemvThreads, batch * d * sizeof(float),
                h, w.NormWeight, w.NormEps, w.InProj, w.InProjBias, convState, w.ConvWeight, w.ConvBias, xz, u, batch, d, 2 * e, k, Vec(w.InProj));
            LaunchEarly(file, xProjKernel, GemvGrid(xRows), GemvThreads, batch * e * sizeof(float), u, w.XProj, dbc, batch, e, xRows, Vec(w.XProj));
        }
        else
        {
            // cuBLAS products; with 2-byte weights the kernel that makes a product's input writes it in their type (RMSNorm
            // here, the conv a copy of u, the scan y), so no conversion pass runs before each product
            using (var normed = Tensor.Empty(h.Shape, ProductInput(w.InProj), Device))
            {
                RmsNormForwardAs(h, w.NormWeight, w.NormEps, normed);
                Project(normed, w.InProj, w.InProjBias, xz);
            }
            var uType = ProductInput(w.XProj);
            using var uNarrow = uType == DType.F32 ? null : Tensor.Empty(u.Shape, uType, Device);
            // the conv also copies h into output, which out_proj's product adds to
            LaunchEarly(file, Kernels.MambaStep.MambaStepConv, GridFor((long)batch * e), 256, 0, xz, convState, w.ConvWeight, w.ConvBias, u,
                uNarrow, StepKind(uNarrow), h, output, h.NumElements, batch, e, k);
            Project(uNarrow ?? u, w.XProj, null, dbc);
        }
        if (fused)
        {
            LaunchEarly(file, StepKernel(w.DtProj, Kernels.MambaStep.MambaStepScanF32, Kernels.MambaStep.MambaStepScanBf16, Kernels.MambaStep.MambaStepScanF16),
                (uint)(((long)batch * e * 16 + 255) / 256), 256, 0,
                xz, convState, u, dbc, w.DtProj, w.DtBias, w.ALog, w.D, ssmState, y, StepKind(y), batch, e, k, r, n);
            LaunchEarly(file, outProjKernel, GemvGrid(d), GemvThreads, batch * e * sizeof(float),
                y, w.OutProj, w.OutProjBias, h, output, batch, e, d, Vec(w.OutProj));
        }
        else
        {
            LaunchEarly(file, StepKernel(w.DtProj, Kernels.MambaStep.MambaStepScanWideF32, Kernels.MambaStep.MambaStepScanWideBf16, Kernels.MambaStep.MambaStepScanWideF16),
                (uint)(((long)batch * e + 255) / 256), 256, 0,
                xz, convState, u, dbc, w.DtProj, w.DtBias, w.ALog, w.D, ssmState, y, StepKind(y), batch, e, k, r, n, WideScanVec(w, dbc, ssmState));
            Project(y, w.OutProj, w.OutProjBias, output, accumulate: true);   // onto h, which the conv copied there
        }
    }

    /// <summary>1 when mamba_step_scan_wide may read dt_proj's rows, A, the dbc rows and the state 16 bytes at a time: r a
    /// multiple of 8, n of 4, each buffer 16-byte aligned.</summary>
    private static int WideScanVec(in MambaStepWeights w, Tensor dbc, Tensor ssmState) =>
        Vec(w.DtProj) == 1 && w.DtRank % 8 == 0 && w.DState % 4 == 0
        && (w.ALog.DataPointer | dbc.DataPointer | ssmState.DataPointer) % 16 == 0 ? 1 : 0;

    public void MambaHeadStep(Tensor h, Tensor normWeight, float eps, Tensor lmHead, Tensor logits, Tensor? ids)
    {
        int batch = h.Shape[0], d = h.Shape[1], vocab = lmHead.Shape[0];
        if (batch == 0) return;
        const string file = Kernels.MambaStep.File;
        uint blocks;
        bool finished = false;   // the head's last block wrote the ids
        Storage? partials = null;
        try
        {
            string kernel = batch == 1
                ? StepKernel(lmHead, Kernels.MambaStep.MambaStepHead1F32, Kernels.MambaStep.MambaStepHead1Bf16, Kernels.MambaStep.MambaStepHead1F16)
                : StepKernel(lmHead, Kernels.MambaStep.MambaStepHeadF32, Kernels.MambaStep.MambaStepHeadBf16, Kernels.MambaStep.MambaStepHeadF16);
            if (Fits(kernel, batch, d))
            {
                int shared = batch * d * sizeof(float);
                blocks = HeadGrid(kernel, shared, vocab, batch == 1 ? 2 : 1);
                partials = Allocator.Allocate((long)batch * blocks * 8);
                nint done = StepCounter(HeadCounter);   // made at any eager step, so that a graph captured after one folds the finish too
                finished = ids is not null && done != 0;
                LaunchEarly(file, kernel, blocks, GemvThreads, shared,
                    h, normWeight, eps, lmHead, logits, partials.Pointer, done, finished ? ids : null, batch, d, vocab, Vec(lmHead));
            }
            else
            {
                using (var normed = Tensor.Empty(h.Shape, ProductInput(lmHead), Device))
                {
                    RmsNormForwardAs(h, normWeight, eps, normed);
                    Project(normed, lmHead, null, logits);
                }
                if (ids is null) return;
                blocks = (uint)Math.Max(1, (vocab + 2047) / 2048);
                partials = Allocator.Allocate((long)batch * blocks * 8);
                LaunchEarly(file, Kernels.MambaStep.MambaStepArgMaxPartials, new Dim3(blocks, (uint)batch), 256, 0, logits, partials.Pointer, vocab);
            }
            if (ids is not null && !finished)
                LaunchEarly(file, Kernels.MambaStep.MambaStepArgMaxFinish, batch, 512, 0, partials.Pointer, (int)blocks, ids);
        }
        finally { partials?.Release(); }
    }

    /// <summary>Blocks of the fused head: no more than are resident at once (each block normalises h once, then its warps
    /// stream rows), and no more than give each warp <paramref name="rowsInFlight"/> rows.</summary>
    private uint HeadGrid(string kernel, int shared, int rows, int rowsInFlight) =>
        Math.Max(1u, ResidentGrid(kernel, GemvThreads, shared, rows, GemvThreads / 32 * rowsInFlight));

    /// <summary>mamba_step_layer of the projections' kind, or null when they differ in kind, <see cref="PersistentLayerStep"/>
    /// is off, or a graph is being captured before any eager layer step made the barrier's counter.</summary>
    private string? LayerKernel(in MambaStepWeights w)
    {
        var kind = w.InProj.DType;
        if (!PersistentLayerStep || (_stepCounters is null && IsCapturing) || w.XProj.DType != kind || w.DtProj.DType != kind || w.OutProj.DType != kind) return null;
        return StepKernel(w.InProj, Kernels.MambaStep.MambaStepLayerF32, Kernels.MambaStep.MambaStepLayerBf16, Kernels.MambaStep.MambaStepLayerF16);
    }

    /// <summary>Blocks of mamba_step_layer: no more than fit on the GPU at once (its grid barrier waits for every block), and
    /// no more than give each of the <paramref name="rows"/> rows of in_proj its own warp; 0 when no block fits (the four
    /// kernels run instead).</summary>
    private uint LayerGrid(string kernel, int shared, int rows) => ResidentGrid(kernel, LayerThreads, shared, rows, LayerThreads / 32);

    /// <summary>Blocks enough for <paramref name="rows"/> at <paramref name="rowsPerBlock"/> each, but no more than are
    /// resident at once on the GPU (at least 1); 0 when no block of the kernel fits.</summary>
    private uint ResidentGrid(string kernel, int threads, int shared, int rows, long rowsPerBlock)
    {
        long resident = (long)Multiprocessors * BlocksPerMultiprocessor(Kernels.MambaStep.File, kernel, threads, shared);
        return resident < 1 ? 0u : (uint)Math.Clamp((rows + rowsPerBlock - 1) / rowsPerBlock, 1, resident);
    }

    /// <summary>The address of counter <paramref name="index"/> (<see cref="GridBarrierCounter"/>, <see cref="HeadCounter"/>),
    /// the counters made and zeroed at the first eager use (kept for the backend's life: each kernel sets its counter back
    /// to 0); 0 while a graph is captured before that (the caller then runs without it).</summary>
    private nint StepCounter(int index)
    {
        if (_stepCounters is null)
        {
            if (IsCapturing) return 0;
            _stepCounters = Allocator.Allocate(2 * sizeof(uint));
            CudaDriver.Check(CudaDriver.cuMemsetD32Async((ulong)_stepCounters.Pointer, 0, 2, Stream), "cuMemsetD32Async");
        }
        return _stepCounters.Pointer + index * sizeof(uint);
    }

    /// <summary>Whether <paramref name="batch"/> rows of <paramref name="width"/> floats go through the fused GEMV kernel
    /// <paramref name="kernel"/>: at most 8 streams, all in one block's dynamic shared memory (beside the kernel's static).</summary>
    private bool Fits(string kernel, int batch, int width) =>
        batch <= StepRows && (long)batch * width * sizeof(float) <= DynamicSharedLimit(Kernels.MambaStep.File, kernel);

    /// <summary>Blocks of the one-warp-per-row kernels: every row its warp, at most 16 blocks per multiprocessor (then the warps loop).</summary>
    private uint GemvGrid(int rows) => (uint)Math.Clamp((rows + GemvThreads / 32 - 1) / (GemvThreads / 32), 1, Multiprocessors * 16);

    /// <summary>1 when every row of <paramref name="weight"/> can be read 16 bytes at a time (a multiple of 8 values, 16-byte aligned).</summary>
    private static int Vec(Tensor weight) => weight.Shape[1] % 8 == 0 && weight.DataPointer % 16 == 0 ? 1 : 0;

    private static string StepKernel(Tensor weight, string f32, string bf16, string f16) => weight.DType switch
    {
        DType.F32 => f32,
        DType.BF16 => bf16,
        DType.F16 => f16,
        _ => throw new ArgumentException($"weight {weight.Name}{weight.Shape} is {weight.DType}; the fused step reads F32, BF16 or F16 weights"),
    };

    /// <summary>The type a cuBLAS product with <paramref name="weight"/> reads its input in: the weight's own if BF16/F16, else F32.</summary>
    private DType ProductInput(Tensor weight) => !ConvertProductInputs && (weight.DType is DType.BF16 or DType.F16) ? weight.DType : DType.F32;

    /// <summary>A step kernel's code for a buffer's type (0 F32 or none, 1 BF16, 2 F16; KIND of mamba_step.cu).</summary>
    private static int StepKind(Tensor? t) => t?.DType switch { DType.BF16 => 1, DType.F16 => 2, _ => 0 };

    /// <summary>y = x·Wᵀ (+ bias) through cuBLAS — y += … with <paramref name="accumulate"/> (β = 1 in the product) — W F32 (at
    /// <see cref="MatmulPrecision"/>), or BF16/F16 with x F32 (converted first, as F.Linear's products) or already in W's type.</summary>
    private void Project(Tensor x, Tensor weight, Tensor? bias, Tensor y, bool accumulate = false)
    {
        float beta = accumulate ? 1f : 0f;
        if (x.DType != DType.F32) GemmNarrowInput(x, weight, y, beta);
        else if (weight.DType.IsNarrowWeight()) GemmNarrowWeight(x, weight, y, beta);
        else Gemm(x, false, weight, true, y, 1f, beta);
        if (bias is not null) AddRowVector(y, bias);
    }
}
