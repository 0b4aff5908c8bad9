using Mamba4.Tensors;

namespace Mamba4.Backends.Cuda;

// Kernels/embedding.cu, layernorm.cu, rmsnorm.cu, conv.cu, step.cu
public sealed unsafe partial class CudaBackend
{
    private const int MaxConvKernel = 8;

    /// <summary>A device word set to ulong.MaxValue; kernels lower it to the first bad position they meet.</summary>
    private Tensor BadIndexSlot()
    {
        var slot = Tensor.Empty(new Shape(1), DType.I64, Device);
        MakeCurrent();
        Native.CudaDriver.Check(Native.CudaDriver.cuMemsetD8Async((ulong)slot.DataPointer, 0xff, 8, Stream), "cuMemsetD8Async");
        return slot;
    }

    /// <summary>Reads the slot back (waits for the stream): −1 when every index was valid, else the first bad position.</summary>
    private long ReadBadIndex(Tensor slot)
    {
        long value;
        CopyToHost(slot, (nint)(&value), 8);
        slot.Dispose();
        return value;
    }

    private static long HostIndex(Tensor ids, long position)
    {
        using var one = ids.Reshape(-1).Slice((int)position, 1);
        return one.ToInt64Array()[0];
    }

    public void EmbeddingForward(Tensor weight, Tensor ids, Tensor y)
    {
        int num = weight.Shape[0], dim = weight.Shape[1];
        long n = ids.NumElements * dim;
        if (n == 0) return;
        if (IsCapturing)
        {
            // nothing can be read back while a graph is captured: out-of-range ids give zero rows there, unreported
            Launch("embedding.cu", "embedding_forward", GridFor(n), 256, 0, weight, ids, ids.DType == DType.I64, num, dim, y, n, 0);
            return;
        }
        var slot = BadIndexSlot();
        Launch("embedding.cu", "embedding_forward", GridFor(n), 256, 0, weight, ids, ids.DType == DType.I64, num, dim, y, n, slot);
        long bad = ReadBadIndex(slot);
        if (bad >= 0)
            throw new ArgumentOutOfRangeException(nameof(ids), $"Embedding: id {HostIndex(ids, bad)} at position {bad} of ids {ids.Shape} is outside [0, {num}) for weight {weight.Name}{weight.Shape}");
    }

    public void EmbeddingBackward(Tensor dy, Tensor ids, Tensor dWeight, long paddingIndex)
    {
        int dim = dWeight.Shape[1];
        long n = ids.NumElements * dim;
        Map("embedding.cu", "embedding_backward", n, dy, ids, ids.DType == DType.I64, dim, dWeight, paddingIndex, n);
    }

    // one warp per row, 8 rows per block
    private static uint RowBlocks(long rows) => (uint)((rows + 7) / 8);

    public void LayerNormForward(Tensor x, Tensor weight, Tensor? bias, float eps, Tensor y, Tensor mean, Tensor rstd)
    {
        long rows = x.Shape.Rows;
        Launch("layernorm.cu", "layernorm_forward", RowBlocks(rows), 256, 0, x, weight, bias, eps, y, mean, rstd, rows, x.Shape.Last);
    }

    public void LayerNormBackward(Tensor dy, Tensor x, Tensor weight, Tensor mean, Tensor rstd, Tensor dx, Tensor dWeight, Tensor? dBias)
    {
        long rows = x.Shape.Rows;
        int d = x.Shape.Last;
        Launch("layernorm.cu", "layernorm_backward_dx", RowBlocks(rows), 256, 0, dy, x, weight, mean, rstd, dx, rows, d);
        // dw and db: partial column sums of both in one pass, then each is reduced.
        Storage? biasPartial = null;
        try
        {
            ColumnSums(rows, d, dWeight, false, (segments, perSegment, partial) =>
            {
                if (dBias is not null) biasPartial = Allocator.Allocate((long)segments * d * sizeof(double));
                Launch("layernorm.cu", "layernorm_params_partials", new Dim3((uint)((d + 255) / 256), (uint)segments), 256, 0,
                    dy, x, mean, rstd, rows, d, perSegment, partial, biasPartial is null ? 0 : biasPartial.Pointer);
                if (biasPartial is not null)
                    Launch("reduce.cu", "sum_rows_final", (uint)((d + 255) / 256), 256, 0, biasPartial.Pointer, segments, d, dBias, false);
            });
            if (rows == 0 && dBias is not null) Fill(dBias, 0f);
        }
        finally { biasPartial?.Release(); }
    }

    public void RmsNormForward(Tensor x, Tensor weight, float eps, Tensor y, Tensor rstd)
    {
        long rows = x.Shape.Rows;
        Launch("rmsnorm.cu", "rmsnorm_forward", RowBlocks(rows), 256, 0, x, weight, eps, y, rstd, rows, x.Shape.Last);
    }

    public void RmsNormBackward(Tensor dy, Tensor x, Tensor weight, Tensor rstd, Tensor dx, Tensor dWeight)
    {
        long rows = x.Shape.Rows;
        int d = x.Shape.Last;
        Launch("rmsnorm.cu", "rmsnorm_backward_dx", RowBlocks(rows), 256, 0, dy, x, weight, rstd, dx, rows, d);
        ColumnSums(rows, d, dWeight, false, (segments, perSegment, partial) =>
            Launch("rmsnorm.cu", "rmsnorm_weight_partials", new Dim3((uint)((d + 255) / 256), (uint)segments), 256, 0,
                dy, x, rstd, rows, d, perSegment, partial));
    }

    // ---- causal conv1d ----

    private static void CheckKernelWidth(Tensor weight)
    {
        if (weight.Shape[2] > MaxConvKernel)
            throw new NotSupportedException($"CausalConv1d on CUDA supports kernel widths up to {MaxConvKernel}, got {weight.Shape[2]}");
    }

    public void CausalConv1dForward(Tensor x, Tensor weight, Tensor? bias, bool silu, Tensor y)
    {
        CheckKernelWidth(weight);
        int b = x.Shape[0], l = x.Shape[1], d = x.Shape[2], k = weight.Shape[2];
        Map("conv.cu", "conv_forward", x.NumElements, x, weight, bias, silu, y, b, l, d, k);
    }

    public void CausalConv1dBackward(Tensor x, Tensor weight, Tensor? bias, bool silu, Tensor dy, Tensor dx, Tensor dWeight, Tensor? dBias)
    {
        CheckKernelWidth(weight);
        int b = x.Shape[0], l = x.Shape[1], d = x.Shape[2], k = weight.Shape[2];
        Map("conv.cu", "conv_backward_dx", x.NumElements, x, weight, bias, silu, dy, dx, b, l, d, k);
        long rows = (long)b * l;
        int columnBlocks = (d + 255) / 256;
        int segments = (int)Math.Clamp(Multiprocessors * 8L / columnBlocks, 1, Math.Max(1, Math.Min(1024, rows / 16 + 1)));
        long perSegment = Math.Max(1, (rows + segments - 1) / segments);
        segments = (int)Math.Max(1, (rows + perSegment - 1) / perSegment);
        var partial = Allocator.Allocate((long)segments * (k + 1) * d * sizeof(double));
        try
        {
            if (rows == 0) Launch("elementwise.cu", "fill_u64", GridFor((long)segments * (k + 1) * d), 256, 0, partial.Pointer, 0UL, (long)segments * (k + 1) * d);
            else Launch("conv.cu", "conv_params_partials", new Dim3((uint)columnBlocks, (uint)segments), 256, 0,
                x, weight, bias, silu, dy, b, l, d, k, perSegment, partial.Pointer);
            Map("conv.cu", "conv_params_final", (long)d * (k + 1), partial.Pointer, segments, d, k, dWeight, dBias);
        }
        finally { partial.Release(); }
    }

    // ---- recurrent step ----

    public void CausalConv1dStep(Tensor x, Tensor convState, Tensor weight, Tensor? bias, bool silu, Tensor y)
    {
        int batch = x.Shape[0], d = x.Shape[1], k = weight.Shape[2];
        Map("step.cu", "conv_step", (long)batch * d, x, convState, weight, bias, silu, y, batch, d, k);
    }

    public void SelectiveScanStep(Tensor u, Tensor delta, Tensor a, Tensor b, Tensor c, Tensor? d, Tensor? z, Tensor? deltaBias,
        bool deltaSoftplus, bool selective, Tensor ssmState, Tensor y)
    {
        int batch = u.Shape[0], dim = u.Shape[1], n = a.Shape[1];
        Map("step.cu", "scan_step", (long)batch * dim, u, delta, a, b, c, d, z, deltaBias, deltaSoftplus, selective, ssmState, y, batch, dim, n);
    }
}
