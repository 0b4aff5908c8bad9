using System.Numerics.Tensors;
using Mamba4.Tensors;

namespace Mamba4.Backends.Cpu;

public sealed unsafe partial class CpuBackend
{
    public void LayerNormForward(Tensor x, Tensor weight, Tensor? bias, float eps, Tensor y, Tensor mean, Tensor rstd)
    {
        int d = x.Shape.Last;
        float* px = x.F32, py = y.F32, pw = weight.F32, pb = bias is null ? null : bias.F32, pm = mean.F32, pr = rstd.F32;
        CpuParallel.For(x.Shape.Rows, RowGrain(d), (r0, r1) =>
        {
            for (long r = r0; r < r1; r++)
            {
                var xr = new ReadOnlySpan<float>(px + r * d, d);
                var yr = new Span<float>(py + r * d, d);
                float mu = TensorPrimitives.Sum(xr) / d;
                TensorPrimitives.Subtract(xr, mu, yr);                       // y = x − μ (two-pass variance)
                float var = TensorPrimitives.SumOfSquares(yr) / d;
                float rs = 1f / MathF.Sqrt(var + eps);
                pm[r] = mu;
                pr[r] = rs;
                TensorPrimitives.Multiply(yr, rs, yr);                       // x̂
                TensorPrimitives.Multiply(yr, new ReadOnlySpan<float>(pw, d), yr);
                if (pb != null) TensorPrimitives.Add(yr, new ReadOnlySpan<float>(pb, d), yr);
            }
        });
    }

    public void LayerNormBackward(Tensor dy, Tensor x, Tensor weight, Tensor mean, Tensor rstd, Tensor dx, Tensor dWeight, Tensor? dBias)
    {
        int d = x.Shape.Last;
        float* pdy = dy.F32, px = x.F32, pw = weight.F32, pm = mean.F32, pr = rstd.F32, pdx = dx.F32;
        RowsWithColumnSums(x.Shape.Rows, d, dBias is not null, dWeight, dBias, (r0, r1, dwPart, dbPart, xhat, g) =>
        {
            var w = new ReadOnlySpan<float>(pw, d);
            for (long r = r0; r < r1; r++)
            {
                var dyr = new ReadOnlySpan<float>(pdy + r * d, d);
                TensorPrimitives.Subtract(new ReadOnlySpan<float>(px + r * d, d), pm[r], xhat);
                TensorPrimitives.Multiply(xhat, pr[r], xhat);                 // x̂
                TensorPrimitives.MultiplyAdd(dyr, xhat, dwPart, dwPart);      // dw += dy·x̂
                if (!dbPart.IsEmpty) TensorPrimitives.Add(dbPart, dyr, dbPart);
                TensorPrimitives.Multiply(dyr, w, g);                         // g = dy·w
                float meanG = TensorPrimitives.Sum(g) / d;
                float meanGx = TensorPrimitives.Dot(g, xhat) / d;
                var dxr = new Span<float>(pdx + r * d, d);
                TensorPrimitives.Multiply(xhat, -meanGx, dxr);                // dx = r·(g − mean g − x̂·mean(g·x̂))
                TensorPrimitives.Add(dxr, g, dxr);
                TensorPrimitives.Add(dxr, -meanG, dxr);
                TensorPrimitives.Multiply(dxr, pr[r], dxr);
            }
        });
    }
}
