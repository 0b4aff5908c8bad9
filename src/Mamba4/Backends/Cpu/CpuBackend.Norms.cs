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

    public void RmsNormForward(Tensor x, Tensor weight, float eps, Tensor y, Tensor rstd)
    {
        int d = x.Shape.Last;
        float* px = x.F32, py = y.F32, pw = weight.F32, pr = rstd.F32;
        CpuParallel.For(x.Shape.Rows, RowGrain(d), (r0, r1) =>
        {
            for (long r = r0; r < r1; r++)
            {
                var xr = new ReadOnlySpan<float>(px + r * d, d);
                var yr = new Span<float>(py + r * d, d);
                float rs = 1f / MathF.Sqrt(TensorPrimitives.SumOfSquares(xr) / d + eps);
                pr[r] = rs;
                TensorPrimitives.Multiply(xr, rs, yr);
                TensorPrimitives.Multiply(yr, new ReadOnlySpan<float>(pw, d), yr);
            }
        });
    }

    public void RmsNormBackward(Tensor dy, Tensor x, Tensor weight, Tensor rstd, Tensor dx, Tensor dWeight)
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
                TensorPrimitives.MultiplyAdd(xhat, -meanGx, g, dxr);            // dx = r·(g − x̂·mean(g·x̂))
                TensorPrimitives.Multiply(dxr, pr[r], dxr);
            }
        });
    }

    /// <summary>Rows per parallel chunk so a chunk holds about 16K elements.</summary>
    private static long RowGrain(int d) => Math.Max(1, 16384 / Math.Max(1, d));

    private delegate void RowBody(long r0, long r1, Span<float> dwPart, Span<float> dbPart, Span<float> scratch1, Span<float> scratch2);

    /// <summary>
    /// Runs <paramref name="body"/> over row chunks in parallel; each chunk accumulates its own partial
    /// column sums (dw, db), which are then added in a fixed order (deterministic, race-free).
    /// </summary>
    private static void RowsWithColumnSums(long rows, int d, bool withBias, Tensor dWeight, Tensor? dBias, RowBody body)
    {
        int chunks = (int)Math.Max(1, Math.Min(CpuParallel.Threads * 2L, (rows + RowGrain(d) - 1) / RowGrain(d)));
        long per = (rows + chunks - 1) / chunks;
        using var partials = Tensor.Zeros(new Shape(chunks, 4, d)).Persist();
        float* pp = partials.F32;
        Parallel.For(0, chunks, new ParallelOptions { MaxDegreeOfParallelism = CpuParallel.Threads }, c =>
        {
            long r0 = c * per, r1 = Math.Min(rows, r0 + per);
            float* basePtr = pp + (long)c * 4 * d;
            if (r0 < r1)
                body(r0, r1, new Span<float>(basePtr, d), withBias ? new Span<float>(basePtr + d, d) : default,
                    new Span<float>(basePtr + 2 * d, d), new Span<float>(basePtr + 3 * d, d));
        });
        var dw = new Span<float>(dWeight.F32, d);
        dw.Clear();
        for (int c = 0; c < chunks; c++) TensorPrimitives.Add(dw, new ReadOnlySpan<float>(pp + (long)c * 4 * d, d), dw);
        if (dBias is not null)
        {
            var db = new Span<float>(dBias.F32, d);
            db.Clear();
            for (int c = 0; c < chunks; c++) TensorPrimitives.Add(db, new ReadOnlySpan<float>(pp + (long)c * 4 * d + d, d), db);
        }
    }
}
