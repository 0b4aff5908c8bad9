using Mamba4.Tensors;

namespace Mamba4.Backends.Cuda;

// Kernels/rms_norm.cu: one warp per row; the weight gradient as column sums (CudaBackend.Reduce.cs: ColumnSums).
public sealed unsafe partial class CudaBackend
{
    public void RmsNormForward(Tensor x, Tensor weight, float eps, Tensor y, Tensor rstd)
    {
        long rows = x.Shape.Rows;
        Launch(Kernels.RmsNorm.File, Kernels.RmsNorm.RmsnormForward, RowBlocks(rows), 256, 0, x, weight, eps, y, rstd, rows, x.Shape.Last);
    }

    public void RmsNormBackward(Tensor dy, Tensor x, Tensor weight, Tensor rstd, Tensor dx, Tensor dWeight)
    {
        long rows = x.Shape.Rows;
        int d = x.Shape.Last;
        Launch(Kernels.RmsNorm.File, Kernels.RmsNorm.RmsnormBackwardDx, RowBlocks(rows), 256, 0, dy, x, weight, rstd, dx, rows, d);
        ColumnSums(rows, d, dWeight, false, (segments, perSegment, partial) =>
            Launch(Kernels.RmsNorm.File, Kernels.RmsNorm.RmsnormWeightPartials, new Dim3((uint)((d + 255) / 256), (uint)segments), 256, 0,
                dy, x, rstd, rows, d, perSegment, partial));
    }
}
