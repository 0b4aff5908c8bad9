using System.Runtime.Intrinsics;

namespace Mamba4.Backends.Cpu;

/// <summary>
/// Matrix products with few rows (decoding: one token per stream, a batch of streams, a short prompt).
/// C[r, o] = α Σ_k A[r, k]·W[o, k] + β C[r, o] for r &lt; m ≤ <see cref="MaxRows"/>: each weight row is streamed
/// from memory once for all m rows of A (which stay in cache), split across cores. A general GEMM would pack
/// the weights first, which costs more than the product itself when m is small.
/// Every C[r, o] is computed by the same <see cref="Dot"/> order whatever m is (three rows of A share each
/// load of W in <see cref="Dot3"/>, with the same accumulators): a stream's logits do not depend on how many
/// other streams share its batched step.
/// </summary>
internal static unsafe class CpuGemv
{
    /// <summary>Largest m routed here rather than to the packed GEMM (measured: bench `serve` prints the step time per batch size).</summary>
    public static int MaxRows { get; set; } = 64;

    public static void RowsTimesTransposed(int m, int n, int k, float alpha, float* a, int lda, float* w, int ldw, float beta, float* c, int ldc)
    {
        CpuParallel.For(n, Math.Max(16, 65536 / Math.Max(1, k * Math.Min(m, 8))), (o0, o1) =>
        {
            for (long o = o0; o < o1; o++)
            {
                float* wr = w + o * ldw;
                int r = 0;
                if (Vector256.IsHardwareAccelerated && k >= 32)
                    for (; r + 3 <= m; r += 3)
                    {
                        var (d0, d1, d2) = Dot3(a + (long)r * lda, a + (long)(r + 1) * lda, a + (long)(r + 2) * lda, wr, k);
                        Store(c + (long)r * ldc + o, d0, alpha, beta);
                        Store(c + (long)(r + 1) * ldc + o, d1, alpha, beta);
                        Store(c + (long)(r + 2) * ldc + o, d2, alpha, beta);
                    }
                for (; r < m; r++) Store(c + (long)r * ldc + o, Dot(a + (long)r * lda, wr, k), alpha, beta);
            }
        });
    }

    private static void Store(float* cr, float dot, float alpha, float beta) => *cr = beta == 0f ? alpha * dot : alpha * dot + beta * *cr;

    /// <summary>Three dot products against one weight row, each bit-identical to <see cref="Dot"/> (k ≥ 32, AVX2).</summary>
    private static (float, float, float) Dot3(float* x0, float* x1, float* x2, float* y, int k)
    {
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        Vector256<float> b0 = default, b1 = default, b2 = default, b3 = default;
        Vector256<float> c0 = default, c1 = default, c2 = default, c3 = default;
        int i = 0;
        for (; i <= k - 32; i += 32)
        {
            var y0 = Vector256.Load(y + i);
            a0 = Vector256.FusedMultiplyAdd(Vector256.Load(x0 + i), y0, a0);
            b0 = Vector256.FusedMultiplyAdd(Vector256.Load(x1 + i), y0, b0);
            c0 = Vector256.FusedMultiplyAdd(Vector256.Load(x2 + i), y0, c0);
            var y1 = Vector256.Load(y + i + 8);
            a1 = Vector256.FusedMultiplyAdd(Vector256.Load(x0 + i + 8), y1, a1);
            b1 = Vector256.FusedMultiplyAdd(Vector256.Load(x1 + i + 8), y1, b1);
            c1 = Vector256.FusedMultiplyAdd(Vector256.Load(x2 + i + 8), y1, c1);
            var y2 = Vector256.Load(y + i + 16);
            a2 = Vector256.FusedMultiplyAdd(Vector256.Load(x0 + i + 16), y2, a2);
            b2 = Vector256.FusedMultiplyAdd(Vector256.Load(x1 + i + 16), y2, b2);
            c2 = Vector256.FusedMultiplyAdd(Vector256.Load(x2 + i + 16), y2, c2);
            var y3 = Vector256.Load(y + i + 24);
            a3 = Vector256.FusedMultiplyAdd(Vector256.Load(x0 + i + 24), y3, a3);
            b3 = Vector256.FusedMultiplyAdd(Vector256.Load(x1 + i + 24), y3, b3);
            c3 = Vector256.FusedMultiplyAdd(Vector256.Load(x2 + i + 24), y3, c3);
        }
        for (; i <= k - 8; i += 8)
        {
            var yv = Vector256.Load(y + i);
            a0 = Vector256.FusedMultiplyAdd(Vector256.Load(x0 + i), yv, a0);
            b0 = Vector256.FusedMultiplyAdd(Vector256.Load(x1 + i), yv, b0);
            c0 = Vector256.FusedMultiplyAdd(Vector256.Load(x2 + i), yv, c0);
        }
        float s0 = Vector256.Sum((a0 + a1) + (a2 + a3)), s1 = Vector256.Sum((b0 + b1) + (b2 + b3)), s2 = Vector256.Sum((c0 + c1) + (c2 + c3));
        for (; i < k; i++)
        {
            s0 += x0[i] * y[i];
            s1 += x1[i] * y[i];
            s2 += x2[i] * y[i];
        }
        return (s0, s1, s2);
    }

    private static float Dot(float* x, float* y, int k)
    {
        int i = 0;
        float sum = 0f;
        if (Vector256.IsHardwareAccelerated && k >= 32)
        {
            Vector256<float> s0 = default, s1 = default, s2 = default, s3 = default;
            for (; i <= k - 32; i += 32)
            {
                s0 = Vector256.FusedMultiplyAdd(Vector256.Load(x + i), Vector256.Load(y + i), s0);
                s1 = Vector256.FusedMultiplyAdd(Vector256.Load(x + i + 8), Vector256.Load(y + i + 8), s1);
                s2 = Vector256.FusedMultiplyAdd(Vector256.Load(x + i + 16), Vector256.Load(y + i + 16), s2);
                s3 = Vector256.FusedMultiplyAdd(Vector256.Load(x + i + 24), Vector256.Load(y + i + 24), s3);
            }
            for (; i <= k - 8; i += 8) s0 = Vector256.FusedMultiplyAdd(Vector256.Load(x + i), Vector256.Load(y + i), s0);
            sum = Vector256.Sum((s0 + s1) + (s2 + s3));
        }
        for (; i < k; i++) sum += x[i] * y[i];
        return sum;
    }
}
