using Mamba4.Tensors;

namespace Mamba4.Ops;

/// <summary>Shape and dtype validation shared by the ops: errors name the op, the argument and what was expected.</summary>
internal static class OpCheck
{
    /// <summary>C = α·op(A)·op(B) + β·C over the tensors' rows × last axis: (m, n, k) of op(A) m×k and op(B) k×n, or a
    /// one-line error naming the three shapes when C is not m×n or the inner sizes differ (every backend's Gemm).</summary>
    public static (int M, int N, int K) GemmSizes(Tensor a, bool transA, Tensor b, bool transB, Tensor c)
    {
        int aRows = checked((int)a.Shape.Rows), aCols = a.Shape.Last;
        int bRows = checked((int)b.Shape.Rows), bCols = b.Shape.Last;
        int m = transA ? aCols : aRows, k = transA ? aRows : aCols;
        int bk = transB ? bCols : bRows, n = transB ? bRows : bCols;
        if (bk != k || c.Shape.Rows != m || c.Shape.Last != n)
            throw new ArgumentException(
                $"gemm: A{a.Shape}{(transA ? "ᵀ" : "")} · B{b.Shape}{(transB ? "ᵀ" : "")} into C{c.Shape}: " +
                $"op(A) is {m}×{k}, op(B) is {bk}×{n}, so C must be {m}×{n}{(bk != k ? " and the inner sizes must agree" : "")}");
        return (m, n, k);
    }

    public static void F32(string op, string arg, Tensor t)
    {
        if (t.DType != DType.F32) throw new ArgumentException($"{op}: {arg} must be F32, got {t.DType} {t.Shape}");
    }

    public static void SameDevice(string op, Tensor a, Tensor b)
    {
        if (a.Device != b.Device) throw new ArgumentException($"{op}: tensors are on different devices ({a.Device} and {b.Device})");
    }

    /// <summary>
    /// Data made on the host for a model on a GPU: <paramref name="t"/> (not requiring a gradient) on the CPU while
    /// <paramref name="like"/> is on a device is copied there (as Embedding does with ids). Otherwise unchanged.
    /// </summary>
    public static Tensor OnDeviceOf(Tensor t, Tensor like) =>
        t.Device.IsCpu && !like.Device.IsCpu && !t.RequiresGrad ? t.To(like.Device) : t;

    public static void SameShape(string op, string argA, Tensor a, string argB, Tensor b)
    {
        if (a.Shape != b.Shape) throw new ArgumentException($"{op}: {argA} {a.Shape} and {argB} {b.Shape} must have the same shape");
    }

    public static void Shape(string op, string arg, Tensor t, params int[] expected)
    {
        if (t.Shape != new Shape(expected)) throw new ArgumentException($"{op}: {arg} must have shape [{string.Join(", ", expected)}], got {t.Shape}");
    }

    public static void Rank(string op, string arg, Tensor t, int rank)
    {
        if (t.Rank != rank) throw new ArgumentException($"{op}: {arg} must have rank {rank}, got {t.Shape}");
    }
}
