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

    public void CausalConv1dForward(Tensor x, Tensor weight, Tensor? bias, bool silu, Tensor y)
    {
        CheckKernelWidth(weight);
        int b = x.Shape[0], l = x.Shape[1], d = x.Shape[2], k = weight.Shape[2];
        Map(Kernels.CausalConv1d.File, Kernels.CausalConv1d.ConvForward, x.NumElements, x, weight, bias, silu, y, b, l, d, k);
    }

    public void CausalConv1dBackward(Tensor x, Tensor weight, Tensor? bias, bool silu, Tensor dy, Tensor dx, Tensor dWeight, Tensor? dBias)
    {
        CheckKernelWidth(weight);
        int b = x.Shape[0], l = x.Shape[1], d = x.Shape[2], k = weight.Shape[2];
        Map(Kernels.CausalConv1d.File, Kernels.CausalConv1d.ConvBackwardDx, x.NumElements, x, weight, bias, silu, dy, dx, b, l, d, k);
        long rows = (long)b * l;
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
