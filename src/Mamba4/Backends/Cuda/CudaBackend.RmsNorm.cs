using Mamba4.Tensors;

namespace Mamba4.Backends.Cuda;

// Kernels/rms_norm.cu: one warp per row; the weight gradient as column sums (CudaBackend.Reduce.cs: ColumnSums).
public sealed unsafe partial class CudaBackend
{
    public void RmsNormForward(Tensor x, Tensor weight, float eps, Tensor y, Tensor rstd) => RmsNormRows(x, weight, eps, y, rstd);

    /// <summary>The same without the 1/rms a backward would need (a decoding step's RMSNorm, y the input of a product with
    /// 2-byte weights).</summary>
    internal void RmsNormForwardAs(Tensor x, Tensor weight, float eps, Tensor y) => RmsNormRows(x, weight, eps, y, null);

    /// <summary>y = RMSNorm(x)·weight written in y's type (F32, BF16 or F16: rounded from the same F32 values).</summary>
    private void RmsNormRows(Tensor x, Tensor weight, float eps, Tensor y, Tensor? rstd)
    {
        long rows = x.Shape.Rows;
        string kernel = y.DType switch
        {
            DType.F32 => Kernels.RmsNorm.RmsnormForward,
            DType.BF16 => Kernels.RmsNorm.RmsnormForwardBf16,
            DType.F16 => Kernels.RmsNorm.RmsnormForwardF16,
            _ => throw new ArgumentException($"RMSNorm writes F32, BF16 or F16, not {y.DType}"),
        };
        Launch(Kernels.RmsNorm.File, kernel, RowBlocks(rows), 256, 0, x, weight, eps, y, rstd, rows, x.Shape.Last);
    }

    public void RmsNormBackward(Tensor dy, Tensor x, Tensor weight, Tensor rstd, Tensor dx, Tensor dWeight, bool accumulate = false)
    {
        long rows = x.Shape.Rows;
        int d = x.Shape.Last;
        Launch(Kernels.RmsNorm.File, Kernels.RmsNorm.RmsnormBackwardDx, RowBlocks(rows), 256, 0, dy, x, weight, rstd, dx, accumulate, rows, d);
        ColumnSums(rows, d, dWeight, false, (segments, perSegment, partial) =>
            Launch(Kernels.RmsNorm.File, Kernels.RmsNorm.RmsnormWeightPartials, new Dim3((uint)((d + 255) / 256), (uint)segments), 256, 0,
                dy, x, rstd, rows, d, perSegment, partial));
    }
}
