using Mamba4.Autograd;
using Mamba4.Backends;
using Mamba4.Tensors;

namespace Mamba4.Ops;

/// <summary>
/// Matrix product of [rows, last] views: C = op(A)·op(B), op = identity or transpose; <see cref="BatchedMatMul"/> does
/// the same for every matrix i of [batch, rows, last] tensors (C[i] = op(A[i])·op(B[i])).
///   C = A B:     dA = dC Bᵀ,      dB = Aᵀ dC
///   C = Aᵀ B:    dA = B dCᵀ,      dB = A dC
///   C = A Bᵀ:    dA = dC B,       dB = dCᵀ A
///   C = Aᵀ Bᵀ:   dA = Bᵀ dCᵀ,     dB = dCᵀ Aᵀ
/// </summary>
public static partial class F
{
    public static Tensor MatMul(Tensor a, Tensor b, bool transA = false, bool transB = false) => MatrixProduct("MatMul", a, b, transA, transB, batched: false);

    public static Tensor BatchedMatMul(Tensor a, Tensor b, bool transA = false, bool transB = false) => MatrixProduct("BatchedMatMul", a, b, transA, transB, batched: true);

    private static Tensor MatrixProduct(string op, Tensor a, Tensor b, bool transA, bool transB, bool batched)
    {
        OpCheck.F32(op, "a", a);
        OpCheck.F32(op, "b", b);
        (a, b) = (OpCheck.OnDeviceOf(a, b), OpCheck.OnDeviceOf(b, a));
        OpCheck.SameDevice(op, a, b);
        int batch = 0;
        if (batched)
        {
            OpCheck.Rank(op, "a", a, 3);
            OpCheck.Rank(op, "b", b, 3);
            batch = a.Shape[0];
            if (b.Shape[0] != batch) throw new ArgumentException($"{op}: a {a.Shape} and b {b.Shape} have different batch sizes");
        }
        int aRows = batched ? a.Shape[1] : (int)a.Shape.Rows, aCols = a.Shape.Last, bRows = batched ? b.Shape[1] : (int)b.Shape.Rows, bCols = b.Shape.Last;
        int m = transA ? aCols : aRows, k = transA ? aRows : aCols;
        int kb = transB ? bCols : bRows, n = transB ? bRows : bCols;
        if (k != kb)
            throw new ArgumentException($"{op}: inner dimensions differ: op(a) is [{m}, {k}] (a {a.Shape}{(transA ? "ᵀ" : "")}), op(b) is [{kb}, {n}] (b {b.Shape}{(transB ? "ᵀ" : "")})");
        var c = Tensor.Empty(batched ? new Shape(batch, m, n) : new Shape(m, n), a.DType, a.Device);
        var backend = a.Backend;
        void Gemm(Tensor x, bool tx, Tensor y, bool ty, Tensor into)
        {
            if (batched) backend.GemmBatched(x, tx, y, ty, into, 1f, 0f);
            else backend.Gemm(x, tx, y, ty, into, 1f, 0f);
        }
        Gemm(a, transA, b, transB, c);
        if (Tape.ShouldRecord(a, b))
            Tape.Record(op, () =>
            {
                var dc = c.Grad!;
                if (a.RequiresGrad)
                {
                    var da = Tensor.Empty(a.Shape, a.DType, a.Device);
                    if (!transA) Gemm(dc, false, b, !transB, da);
                    else Gemm(b, transB, dc, true, da);
                    Tape.Accumulate(a, da, owned: true);
                }
                if (b.RequiresGrad)
                {
                    var db = Tensor.Empty(b.Shape, b.DType, b.Device);
                    if (!transB) Gemm(a, !transA, dc, false, db);
                    else Gemm(dc, true, a, transA, db);
                    Tape.Accumulate(b, db, owned: true);
                }
            }, c);
        return c;
    }
}
