using Mamba4.Autograd;
using Mamba4.Tensors;

namespace Mamba4.Ops;

/// <summary>
/// Matrix product of [rows, last] views: C = op(A)·op(B), op = identity or transpose.
///   C = A B:     dA = dC Bᵀ,      dB = Aᵀ dC
///   C = Aᵀ B:    dA = B dCᵀ,      dB = A dC
///   C = A Bᵀ:    dA = dC B,       dB = dCᵀ A
///   C = Aᵀ Bᵀ:   dA = Bᵀ dCᵀ,     dB = dCᵀ Aᵀ
/// </summary>
public static partial class F
{
    public static Tensor MatMul(Tensor a, Tensor b, bool transA = false, bool transB = false)
    {
        OpCheck.F32("MatMul", "a", a);
        OpCheck.F32("MatMul", "b", b);
        (a, b) = (OpCheck.OnDeviceOf(a, b), OpCheck.OnDeviceOf(b, a));
        OpCheck.SameDevice("MatMul", a, b);
        int aRows = (int)a.Shape.Rows, aCols = a.Shape.Last, bRows = (int)b.Shape.Rows, bCols = b.Shape.Last;
        int m = transA ? aCols : aRows, k = transA ? aRows : aCols;
        int kb = transB ? bCols : bRows, n = transB ? bRows : bCols;
        if (k != kb)
            throw new ArgumentException($"MatMul: inner dimensions differ: op(a) is [{m}, {k}] (a {a.Shape}{(transA ? "ᵀ" : "")}), op(b) is [{kb}, {n}] (b {b.Shape}{(transB ? "ᵀ" : "")})");
        var c = Tensor.Empty(new Shape(m, n), a.DType, a.Device);
        a.Backend.Gemm(a, transA, b, transB, c, 1f, 0f);
        if (Tape.ShouldRecord(a, b))
            Tape.Record("MatMul", () =>
            {
                var dc = c.Grad!;
                if (a.RequiresGrad)
                {
                    var da = Tensor.Empty(a.Shape, a.DType, a.Device);
                    if (!transA) a.Backend.Gemm(dc, false, b, !transB, da, 1f, 0f);
                    else a.Backend.Gemm(b, transB, dc, true, da, 1f, 0f);
                    Tape.Accumulate(a, da, owned: true);
                }
                if (b.RequiresGrad)
                {
                    var db = Tensor.Empty(b.Shape, b.DType, b.Device);
                    if (!transB) b.Backend.Gemm(a, !transA, dc, false, db, 1f, 0f);
                    else b.Backend.Gemm(dc, true, a, transA, db, 1f, 0f);
                    Tape.Accumulate(b, db, owned: true);
                }
            }, c);
        return c;
    }
}
