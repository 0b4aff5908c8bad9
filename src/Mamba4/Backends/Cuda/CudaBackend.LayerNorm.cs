using Mamba4.Tensors;

namespace Mamba4.Backends.Cuda;

// Kernels/layer_norm.cu: one warp per row; the weight and bias gradients as column sums (CudaBackend.Reduce.cs: ColumnSums).
public sealed unsafe partial class CudaBackend
{
    public void LayerNormForward(Tensor x, Tensor weight, Tensor? bias, float eps, Tensor y, Tensor mean, Tensor rstd)
    {
        long rows = x.Shape.Rows;
        Launch(Kernels.LayerNorm.File, Kernels.LayerNorm.LayernormForward, RowBlocks(rows), 256, 0, x, weight, bias, eps, y, mean, rstd, rows, x.Shape.Last);
    }

    public void LayerNormBackward(Tensor dy, Tensor x, Tensor weight, Tensor mean, Tensor rstd, Tensor dx, Tensor dWeight, Tensor? dBias)
    {
        long rows = x.Shape.Rows;
        int d = x.Shape.Last;
        Launch(Kernels.LayerNorm.File, Kernels.LayerNorm.LayernormBackwardDx, RowBlocks(rows), 256, 0, dy, x, weight, mean, rstd, dx, rows, d);
        // dw and db: partial column sums of both in one pass, then each is reduced.
        Storage? biasPartial = null;
        try
        {
            ColumnSums(rows, d, dWeight, false, (segments, perSegment, partial) =>
            {
                if (dBias is not null) biasPartial = Allocator.Allocate((long)segments * d * sizeof(double));
                Launch(Kernels.LayerNorm.File, Kernels.LayerNorm.LayernormParamsPartials, new Dim3((uint)((d + 255) / 256), (uint)segments), 256, 0,
                    dy, x, mean, rstd, rows, d, perSegment, partial, biasPartial is null ? 0 : biasPartial.Pointer);
                if (biasPartial is not null)
                    Launch(Kernels.Reduce.File, Kernels.Reduce.SumRowsFinal, (uint)((d + 255) / 256), 256, 0, biasPartial.Pointer, segments, d, dBias, false);
            });
            if (rows == 0 && dBias is not null) Fill(dBias, 0f);
        }
        finally { biasPartial?.Release(); }
    }
}
