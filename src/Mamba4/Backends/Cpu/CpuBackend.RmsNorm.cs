using System.Numerics.Tensors;
using Mamba4.Tensors;

namespace Mamba4.Backends.Cpu;

public sealed unsafe partial class CpuBackend
{
    public void RmsNormForward(Tensor x, Tensor weight, float eps, Tensor y, Tensor rstd)
    {
        int d = x.Shape.Last;
        float* px = x.F32, pw = weight.F32, pr = rstd.F32;
        bool wide = y.DType == DType.F32;
        nint py = y.DataPointer;
        long size = y.DType.ElementSize();
        CpuParallel.For(x.Shape.Rows, RowGrain(d), (r0, r1) =>
        {
            // a y of another type (BF16: a product's operand) is the F32 row rounded
            float[]? row = wide ? null : new float[d];
            for (long r = r0; r < r1; r++)
            {
                var xr = new ReadOnlySpan<float>(px + r * d, d);
                var yr = wide ? new Span<float>((float*)py + r * d, d) : row;
                float rs = 1f / MathF.Sqrt(TensorPrimitives.SumOfSquares(xr) / d + eps);
                pr[r] = rs;
                TensorPrimitives.Multiply(xr, rs, yr);
                TensorPrimitives.Multiply(yr, new ReadOnlySpan<float>(pw, d), yr);
                if (!wide)
                    fixed (float* src = row) DTypeConvert.Convert(src, DType.F32, (void*)(py + (nint)(r * d * size)), y.DType, d);
            }
        });
    }

    public void RmsNormBackward(Tensor dy, Tensor x, Tensor weight, Tensor rstd, Tensor dx, Tensor dWeight, bool accumulate = false)
    {
        int d = x.Shape.Last;
        float* pdy = dy.F32, px = x.F32, pw = weight.F32, pr = rstd.F32, pdx = dx.F32;
        RowsWithColumnSums(x.Shape.Rows, d, false, dWeight, null, (r0, r1, dwPart, _, xhat, g) =>
        {
            var w = new ReadOnlySpan<float>(pw, d);
            for (long r = r0; r < r1; r++)
            {
                var dyr = new ReadOnlySpan<float>(pdy + r * d, d);
                TensorPrimitives.Multiply(new ReadOnlySpan<float>(px + r * d, d), pr[r], xhat);
                TensorPrimitives.MultiplyAdd(dyr, xhat, dwPart, dwPart);
                TensorPrimitives.Multiply(dyr, w, g);
                float meanGx = TensorPrimitives.Dot(g, xhat) / d;
                var dxr = new Span<float>(pdx + r * d, d);
                TensorPrimitives.MultiplyAdd(xhat, -meanGx, g, g);              // dx = r·(g − x̂·mean(g·x̂)) (+ dx)
                if (accumulate) TensorPrimitives.MultiplyAdd(g, pr[r], dxr, dxr);
                else TensorPrimitives.Multiply(g, pr[r], dxr);
            }
        });
    }
}
