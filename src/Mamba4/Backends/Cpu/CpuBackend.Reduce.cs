using System.Numerics.Tensors;
using Mamba4.Tensors;

namespace Mamba4.Backends.Cpu;

public sealed unsafe partial class CpuBackend
{
    public void Sum(Tensor x, Tensor y)
    {
        var p = x.F32;
        long n = x.NumElements;
        double total = 0;
        const int block = 4096;
        for (long i = 0; i < n; i += block)
            total += TensorPrimitives.Sum(new ReadOnlySpan<float>(p + i, (int)Math.Min(block, n - i)));
        y.F32[0] = (float)total;
    }

    public void SumRows(Tensor x, Tensor y, bool accumulate)
    {
        long rows = x.Shape.Rows;
        int d = x.Shape.Last;
        var px = x.F32;
        var py = y.F32;
        // Columns split across cores; each core walks all rows for its columns (accumulated in float64 blocks).
        CpuParallel.For(d, 256, (c0, c1) =>
        {
            int w = (int)(c1 - c0);
            var acc = new double[w];
            var part = new float[w];
            const int block = 256;
            for (long r0 = 0; r0 < rows; r0 += block)
            {
                Array.Clear(part);
                long r1 = Math.Min(rows, r0 + block);
                for (long r = r0; r < r1; r++)
                    TensorPrimitives.Add(part, new ReadOnlySpan<float>(px + r * d + c0, w), part);
                for (int j = 0; j < w; j++) acc[j] += part[j];
            }
            for (int j = 0; j < w; j++) py[c0 + j] = (float)(accumulate ? py[c0 + j] + acc[j] : acc[j]);
        });
    }

    public void AddRowVector(Tensor y, Tensor bias)
    {
        long rows = y.Shape.Rows;
        int d = y.Shape.Last;
        var py = y.F32;
        var pb = bias.F32;
        CpuParallel.For(rows, RowGrain(d), (r0, r1) =>
        {
            var b = new ReadOnlySpan<float>(pb, d);
            for (long r = r0; r < r1; r++)
            {
                var row = new Span<float>(py + r * d, d);
                TensorPrimitives.Add(row, b, row);
            }
        });
    }
}
