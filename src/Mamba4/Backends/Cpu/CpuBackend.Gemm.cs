using Mamba4.Ops;
using Mamba4.Tensors;

namespace Mamba4.Backends.Cpu;

public sealed unsafe partial class CpuBackend
{
    /// <summary>The CPU's products read F32 as it is: nothing to round ahead.</summary>
    public Tensor? ProductOperand(Tensor x) => null;
    public DType ProductOperandType => DType.F32;
    public DType ActivationType => DType.F32;

    /// <summary>
    /// C = alpha·op(A)·op(B) + beta·C with A, B, C viewed as matrices [rows, last]; op(X) = Xᵀ when asked.
    /// op(A): m×k, op(B): k×n, C: m×n. beta == 0 overwrites C.
    /// </summary>
    public void Gemm(Tensor a, bool transA, Tensor b, bool transB, Tensor c, float alpha, float beta)
    {
        OpCheck.F32("gemm", "A", a);
        OpCheck.F32("gemm", "B", b);
        OpCheck.F32("gemm", "C", c);
        var (m, n, k) = OpCheck.GemmSizes(a, transA, b, transB, c);
        int aCols = a.Shape.Last, bCols = b.Shape.Last;   // the leading dimensions
        if (Overlaps(c, a) || Overlaps(c, b)) throw new ArgumentException($"gemm: C{c.Shape} must not share memory with A{a.Shape} or B{b.Shape}");
        if (!transA && transB && m <= CpuGemv.MaxRows && k > 0)
            CpuGemv.RowsTimesTransposed(m, n, k, alpha, a.F32, Math.Max(1, aCols), b.F32, Math.Max(1, bCols), beta, c.F32, Math.Max(1, n));
        else
            CpuGemm.Sgemm(transA, transB, m, n, k, alpha, a.F32, Math.Max(1, aCols), b.F32, Math.Max(1, bCols), beta, c.F32, Math.Max(1, n));
    }

    /// <summary>C[i] = alpha·op(A[i])·op(B[i]) + beta·C[i] for every i of [batch, rows, last] tensors: one <see cref="Gemm"/> per matrix.</summary>
    public void GemmBatched(Tensor a, bool transA, Tensor b, bool transB, Tensor c, float alpha, float beta)
    {
        int batch = BatchOf(a, b, c);
        for (int i = 0; i < batch; i++)
        {
            using Tensor ai = Matrix(a, i), bi = Matrix(b, i), ci = Matrix(c, i);
            Gemm(ai, transA, bi, transB, ci, alpha, beta);
        }
    }

    /// <summary>The batch of a batched GEMM: A, B and C rank 3 with the same leading size, or a one-line error naming the shapes.</summary>
    internal static int BatchOf(Tensor a, Tensor b, Tensor c) =>
        a.Rank == 3 && b.Rank == 3 && c.Rank == 3 && a.Shape[0] == b.Shape[0] && a.Shape[0] == c.Shape[0]
            ? a.Shape[0] : throw new ArgumentException($"gemm (batched): A{a.Shape}, B{b.Shape} and C{c.Shape} must be [batch, rows, cols] with one batch");

    private static Tensor Matrix(Tensor x, int i) => x.ViewOf(new Shape(x.Shape[1], x.Shape[2]), (long)i * x.Shape[1] * x.Shape[2] * sizeof(float));

    public void GemmNarrowWeight(Tensor x, Tensor weight, Tensor y)
    {
        OpCheck.F32("gemm", "x", x);
        OpCheck.F32("gemm", "y", y);
        int m = checked((int)x.Shape.Rows), k = x.Shape.Last, n = weight.Shape[0];
        if (weight.Rank != 2 || weight.Shape[1] != k || y.Shape.Rows != m || y.Shape.Last != n)
            throw new ArgumentException($"gemm: x{x.Shape} · W{weight.Shape}ᵀ into y{y.Shape}: W must be [{y.Shape.Last}, {k}] and y [{m}, {n}]");
        float* scale = weight.DType == DType.I8 ? NarrowScale(weight).F32 : null;
        CpuNarrowGemm.RowsTimesTransposed(m, n, k, x.F32, Math.Max(1, k), weight.DataPointer, weight.DType, scale, y.F32, Math.Max(1, n));
    }

    /// <summary>The row scales of an I8 weight (F32, one per row), or a one-line error naming the weight.</summary>
    internal static Tensor NarrowScale(Tensor weight) =>
        weight.RowScale is { DType: DType.F32 } s && s.NumElements == weight.Shape[0]
            ? s : throw new ArgumentException($"the I8 weight {weight.Name}{weight.Shape} has no F32 row scale of {weight.Shape[0]} values");

    private static bool Overlaps(Tensor x, Tensor y) =>
        x.ByteLength > 0 && y.ByteLength > 0 && x.DataPointer < y.DataPointer + (nint)y.ByteLength && y.DataPointer < x.DataPointer + (nint)x.ByteLength;
}
