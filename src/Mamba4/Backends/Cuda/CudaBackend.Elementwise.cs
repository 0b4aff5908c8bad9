using Mamba4.Backends.Cpu;
using Mamba4.Tensors;

namespace Mamba4.Backends.Cuda;

// Kernels/elementwise.cu, activations.cu, gate.cu, dropout.cu, reduce.cu
public sealed unsafe partial class CudaBackend
{
    private void Map(string file, string kernel, long n, params ReadOnlySpan<KernelArg> args)
    {
        if (n == 0) return;
        Launch(file, kernel, GridFor(n), 256, 0, args);
    }

    public void Add(Tensor a, Tensor b, Tensor y) => Map("elementwise.cu", "add", y.NumElements, a, b, y, y.NumElements);
    public void Mul(Tensor a, Tensor b, Tensor y) => Map("elementwise.cu", "mul", y.NumElements, a, b, y, y.NumElements);
    public void Scale(Tensor x, float alpha, Tensor y) => Map("elementwise.cu", "scale", y.NumElements, x, alpha, y, y.NumElements);
    public void AddInPlace(Tensor dst, Tensor src, float alpha) => Map("elementwise.cu", "add_in_place", dst.NumElements, dst, src, alpha, dst.NumElements);

    public void ActivationForward(Activation kind, Tensor x, Tensor y) =>
        Map("activations.cu", "activation_forward", x.NumElements, (int)kind, x, y, x.NumElements);

    public void ActivationBackward(Activation kind, Tensor x, Tensor dy, Tensor dx) =>
        Map("activations.cu", "activation_backward", x.NumElements, (int)kind, x, dy, dx, x.NumElements);

    public void GateForward(Tensor y, Tensor z, Tensor output) => Map("gate.cu", "gate_forward", y.NumElements, y, z, output, y.NumElements);

    public void GateBackward(Tensor y, Tensor z, Tensor dOut, Tensor dy, Tensor dz) =>
        Map("gate.cu", "gate_backward", y.NumElements, y, z, dOut, dy, dz, y.NumElements);

    // Same mask as CpuBackend.DropoutForward: keep iff SplitMix64(seed, i) ≥ p·2⁶⁴.
    public void DropoutForward(Tensor x, float p, ulong seed, Tensor y, Tensor mask)
    {
        ulong threshold = CpuBackend.DropoutThreshold(p);
        Map("dropout.cu", "dropout_forward", x.NumElements, x, y, mask, seed, threshold, 1f / (1f - p), x.NumElements);
    }

    public void DropoutBackward(Tensor dy, Tensor mask, float p, Tensor dx) =>
        Map("dropout.cu", "dropout_backward", dy.NumElements, dy, mask, 1f / (1f - p), dx, dy.NumElements);

    // ---- reductions (double accumulation) ----

    public void Sum(Tensor x, Tensor y)
    {
        long n = x.NumElements;
        uint blocks = (uint)Math.Clamp((n + 255) / 256, 1, 1024);
        var partial = Allocator.Allocate(blocks * sizeof(double));
        try
        {
            Launch("reduce.cu", "sum_partials", blocks, 256, 0, x, n, partial.Pointer);
            Launch("reduce.cu", "sum_final", 1, 256, 0, partial.Pointer, (int)blocks, y);
        }
        finally { partial.Release(); }
    }

    public void SumRows(Tensor x, Tensor y, bool accumulate) =>
        ColumnSums(x.Shape.Rows, y.Shape.Last, y, accumulate, (segments, perSegment, partial) =>
            Launch("reduce.cu", "sum_rows_partials", new Dim3((uint)((y.Shape.Last + 255) / 256), (uint)segments), 256, 0,
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
            if (rows == 0) Launch("elementwise.cu", "fill_u64", GridFor((long)segments * d), 256, 0, partial.Pointer, 0UL, (long)segments * d);
            else partials(segments, perSegment, partial.Pointer);
            Launch("reduce.cu", "sum_rows_final", (uint)columnBlocks, 256, 0, partial.Pointer, segments, d, y, accumulate);
        }
        finally { partial.Release(); }
    }

    public void AddRowVector(Tensor y, Tensor bias) =>
        Map("reduce.cu", "add_row_vector", y.NumElements, y, bias, y.Shape.Last, y.NumElements);
}
