using Mamba4.Tensors;

namespace Mamba4.Backends.Cuda;

// Kernels/reduce.cu: sums accumulated in double (partials per block, then a final pass).
public sealed unsafe partial class CudaBackend
{
    public void Sum(Tensor x, Tensor y)
    {
        long n = x.NumElements;
        uint blocks = (uint)Math.Clamp((n + 255) / 256, 1, 1024);
        var partial = Allocator.Allocate(blocks * sizeof(double));
        try
        {
            Launch(Kernels.Reduce.File, Kernels.Reduce.SumPartials, blocks, 256, 0, x, n, partial.Pointer);
            Launch(Kernels.Reduce.File, Kernels.Reduce.SumFinal, 1, 256, 0, partial.Pointer, (int)blocks, y);
        }
        finally { partial.Release(); }
    }

    public void SumRows(Tensor x, Tensor y, bool accumulate) =>
        ColumnSums(x.Shape.Rows, y.Shape.Last, y, accumulate, (segments, perSegment, partial) =>
            Launch(Kernels.Reduce.File, Kernels.Reduce.SumRowsPartials, new Dim3((uint)((y.Shape.Last + 255) / 256), (uint)segments), 256, 0,
                x, x.Shape.Rows, y.Shape.Last, perSegment, partial));

    /// <summary>
    /// Column sums over many rows: <paramref name="partials"/> writes double partial sums [segments, d] (one segment
    /// of rows per grid row), then sum_rows_final adds the segments into <paramref name="y"/>.
    /// </summary>
    private void ColumnSums(long rows, int d, Tensor y, bool accumulate, Action<int, long, nint> partials)
    {
        if (d == 0) return;
        int columnBlocks = (d + 255) / 256;
        int segments = (int)Math.Clamp(Multiprocessors * 8L / columnBlocks, 1, Math.Max(1, Math.Min(1024, rows / 16 + 1)));
        long perSegment = Math.Max(1, (rows + segments - 1) / segments);
        segments = (int)Math.Max(1, (rows + perSegment - 1) / perSegment);
        var partial = Allocator.Allocate((long)segments * d * sizeof(double));
        try
        {
            if (rows == 0) Launch(Kernels.Elementwise.File, Kernels.Elementwise.FillU64, GridFor((long)segments * d), 256, 0, partial.Pointer, 0UL, (long)segments * d);
            else partials(segments, perSegment, partial.Pointer);
            Launch(Kernels.Reduce.File, Kernels.Reduce.SumRowsFinal, (uint)columnBlocks, 256, 0, partial.Pointer, segments, d, y, accumulate);
        }
        finally { partial.Release(); }
    }

    public void AddRowVector(Tensor y, Tensor bias) =>
        Map(Kernels.Reduce.File, Kernels.Reduce.AddRowVector, y.NumElements, y, bias, y.Shape.Last, y.NumElements);
}
