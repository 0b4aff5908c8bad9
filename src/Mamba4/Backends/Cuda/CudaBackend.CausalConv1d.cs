using Mamba4.Tensors;

namespace Mamba4.Backends.Cuda;

// Kernels/causal_conv1d.cu: forward, backward (dx, then the weight and bias sums in segments), the decoding step, and the
// conv state to and from rows of inputs (prefill, continued sequences).
public sealed unsafe partial class CudaBackend
{
    private const int MaxConvKernel = 8;

    private static void CheckKernelWidth(Tensor weight)
    {
        if (weight.Shape[2] > MaxConvKernel)
            throw new NotSupportedException($"CausalConv1d on CUDA supports kernel widths up to {MaxConvKernel}, got {weight.Shape[2]}");
    }

    /// <summary>
    /// Runs the conv's forward and backward as tiled kernels (conv_forward_k{K}, conv_backward_k{K}: a thread walks a run of
    /// steps of one channel with the last K inputs in registers, each input loaded and each pre-activation computed once);
    /// off, the per-element kernels, their reference twins. On by default since session 11: the GPU tests pass with both,
    /// and on an H100 the tiled ones are 1.45× (forward) and 4.9× (backward) the per-element ones at 8 × 2048 × 1536, the
    /// 8 × 2048 training step 1.05× (F32) and 1.15× (BF16 products) (docs/cuda-kernel-notes.md, "Training step").
    /// </summary>
    public bool TiledConv { get; set; } = true;

    private static readonly string[] ConvForwardTiled = [Kernels.CausalConv1d.ConvForwardK1, Kernels.CausalConv1d.ConvForwardK2,
        Kernels.CausalConv1d.ConvForwardK3, Kernels.CausalConv1d.ConvForwardK4, Kernels.CausalConv1d.ConvForwardK5,
        Kernels.CausalConv1d.ConvForwardK6, Kernels.CausalConv1d.ConvForwardK7, Kernels.CausalConv1d.ConvForwardK8];
    private static readonly string[] ConvBackwardTiled = [Kernels.CausalConv1d.ConvBackwardK1, Kernels.CausalConv1d.ConvBackwardK2,
        Kernels.CausalConv1d.ConvBackwardK3, Kernels.CausalConv1d.ConvBackwardK4, Kernels.CausalConv1d.ConvBackwardK5,
        Kernels.CausalConv1d.ConvBackwardK6, Kernels.CausalConv1d.ConvBackwardK7, Kernels.CausalConv1d.ConvBackwardK8];
    private static readonly string[] ConvBackwardTiledBf16 = [Kernels.CausalConv1d.ConvBackwardK1Gbf16, Kernels.CausalConv1d.ConvBackwardK2Gbf16,
        Kernels.CausalConv1d.ConvBackwardK3Gbf16, Kernels.CausalConv1d.ConvBackwardK4Gbf16, Kernels.CausalConv1d.ConvBackwardK5Gbf16,
        Kernels.CausalConv1d.ConvBackwardK6Gbf16, Kernels.CausalConv1d.ConvBackwardK7Gbf16, Kernels.CausalConv1d.ConvBackwardK8Gbf16];

    /// <summary>The tiled kernels' run (steps a tile) and grid: about SMs·2048 (channel, run) tiles, runs of at least 16
    /// steps; blocks of 128 channels, at most SMs·16 blocks' worth and 1,024 along the tiles, each thread walking its tiles
    /// with that stride — so the backward's partial sums (one row of K + 1 doubles a channel per block along x) stay under
    /// SMs·16·128·(K + 1) doubles whatever the batch, length and width.</summary>
    private (int Run, Dim3 Grid) ConvTiles(int b, int l, int d)
    {
        long rows = (long)b * l, target = Math.Max(1, Multiprocessors * 2048L / Math.Max(1, d));
        int run = (int)Math.Clamp((rows + target - 1) / target, 16, Math.Max(16, l));
        long tiles = b * (long)((l + run - 1) / run), channelBlocks = (d + 127) / 128;
        long along = Math.Clamp(Multiprocessors * 16L / channelBlocks, 1, 1024);
        return (run, new Dim3((uint)Math.Min(tiles, along), (uint)channelBlocks));
    }

    /// <summary>Whether the tiled kernels take this conv: <see cref="TiledConv"/>, a width they have (1…8), something to do,
    /// and channel blocks within the grid's y limit.</summary>
    private bool UseTiledConv(int b, int l, int d, int k) => TiledConv && k >= 1 && b > 0 && l > 0 && d > 0 && (d + 127) / 128 <= 65535 && (long)b * l <= int.MaxValue;

    public void CausalConv1dForward(Tensor x, Tensor weight, Tensor? bias, bool silu, Tensor y, Tensor? yBf16 = null)
    {
        CheckKernelWidth(weight);
        int b = x.Shape[0], l = x.Shape[1], d = x.Shape[2], k = weight.Shape[2];
        if (UseTiledConv(b, l, d, k))
        {
            var (run, grid) = ConvTiles(b, l, d);
            Launch(Kernels.CausalConv1d.File, ConvForwardTiled[k - 1], grid, 128, 0, x, weight, bias, silu, y, yBf16, b, l, d, run);
            return;
        }
        Map(Kernels.CausalConv1d.File, Kernels.CausalConv1d.ConvForward, x.NumElements, x, weight, bias, silu, y, b, l, d, k);
        if (yBf16 is not null) RoundToBf16(y, yBf16);
    }

    /// <summary>dx is F32, or BF16 (rounded as it is written: the tiled kernels' _gbf16 forms; the per-element kernels write
    /// an F32 copy that is then rounded).</summary>
    public void CausalConv1dBackward(Tensor x, Tensor weight, Tensor? bias, bool silu, Tensor dy, Tensor dx, Tensor dWeight, Tensor? dBias)
    {
        CheckKernelWidth(weight);
        if (dx.DType is not (DType.F32 or DType.BF16)) throw new ArgumentException($"CausalConv1d on CUDA: dx is {dx.DType}; expected F32 or BF16");
        int b = x.Shape[0], l = x.Shape[1], d = x.Shape[2], k = weight.Shape[2];
        long rows = (long)b * l;
        if (UseTiledConv(b, l, d, k))
        {
            var (run, grid) = ConvTiles(b, l, d);
            var tiles = Allocator.Allocate((long)grid.X * (k + 1) * d * sizeof(double));
            try
            {
                string kernel = dx.DType == DType.BF16 ? ConvBackwardTiledBf16[k - 1] : ConvBackwardTiled[k - 1];
                Launch(Kernels.CausalConv1d.File, kernel, grid, 128, 0, x, weight, bias, silu, dy, dx, b, l, d, run, tiles.Pointer);
                Map(Kernels.CausalConv1d.File, Kernels.CausalConv1d.ConvParamsFinal, (long)d * (k + 1), tiles.Pointer, (int)grid.X, d, k, dWeight, dBias);
            }
            finally { tiles.Release(); }
            return;
        }
        if (dx.DType == DType.F32) Map(Kernels.CausalConv1d.File, Kernels.CausalConv1d.ConvBackwardDx, x.NumElements, x, weight, bias, silu, dy, dx, b, l, d, k);
        else
            using (var dx32 = Tensor.Empty(x.Shape, DType.F32, x.Device))
            {
                Map(Kernels.CausalConv1d.File, Kernels.CausalConv1d.ConvBackwardDx, x.NumElements, x, weight, bias, silu, dy, dx32, b, l, d, k);
                RoundToBf16(dx32, dx);
            }
        int columnBlocks = (d + 255) / 256;
        int segments = (int)Math.Clamp(Multiprocessors * 8L / columnBlocks, 1, Math.Max(1, Math.Min(1024, rows / 16 + 1)));
        long perSegment = Math.Max(1, (rows + segments - 1) / segments);
        segments = (int)Math.Max(1, (rows + perSegment - 1) / perSegment);
        var partial = Allocator.Allocate((long)segments * (k + 1) * d * sizeof(double));
        try
        {
            if (rows == 0) Launch(Kernels.Elementwise.File, Kernels.Elementwise.FillU64, GridFor((long)segments * (k + 1) * d), 256, 0, partial.Pointer, 0UL, (long)segments * (k + 1) * d);
            else Launch(Kernels.CausalConv1d.File, Kernels.CausalConv1d.ConvParamsPartials, new Dim3((uint)columnBlocks, (uint)segments), 256, 0,
                x, weight, bias, silu, dy, b, l, d, k, perSegment, partial.Pointer);
            Map(Kernels.CausalConv1d.File, Kernels.CausalConv1d.ConvParamsFinal, (long)d * (k + 1), partial.Pointer, segments, d, k, dWeight, dBias);
        }
        finally { partial.Release(); }
    }

    // ---- recurrent step ----

    public void CausalConv1dStep(Tensor x, Tensor convState, Tensor weight, Tensor? bias, bool silu, Tensor y)
    {
        int batch = x.Shape[0], d = x.Shape[1], k = weight.Shape[2];
        Map(Kernels.CausalConv1d.File, Kernels.CausalConv1d.ConvStep, (long)batch * d, x, convState, weight, bias, silu, y, batch, d, k);
    }

    public void CausalConv1dSaveState(Tensor x, Tensor convState)
    {
        int batch = x.Shape[0], l = x.Shape[1], d = x.Shape[2], w = convState.Shape[2];
        Map(Kernels.CausalConv1d.File, Kernels.CausalConv1d.ConvSaveState, convState.NumElements, x, convState, batch, l, d, w);
    }

    public void CausalConv1dStateRows(Tensor convState, Tensor rows)
    {
        int batch = convState.Shape[0], d = convState.Shape[1], w = convState.Shape[2];
        Map(Kernels.CausalConv1d.File, Kernels.CausalConv1d.ConvStateRows, rows.NumElements, convState, rows, batch, d, w);
    }
}
