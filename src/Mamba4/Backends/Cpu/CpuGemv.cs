using System.Runtime.Intrinsics;

namespace Mamba4.Backends.Cpu;

/// <summary>
/// Matrix products with very few rows (decoding: one token per stream). C[r, o] = α Σ_k A[r, k]·W[o, k] + β C[r, o]
/// for r &lt; m ≤ 4: memory-bound, so each weight row is streamed once for all m rows of A, split across cores.
/// A general GEMM would pack the weights first, which costs more than the product itself at m = 1.
/// </summary>
internal static unsafe class CpuGemv
{
    public const int MaxRows = 4;

    public static void RowsTimesTransposed(int m, int n, int k, float alpha, float* a, int lda, float* w, int ldw, float beta, float* c, int ldc)
    {
        CpuParallel.For(n, Math.Max(16, 65536 / Math.Max(1, k)), (o0, o1) =>
        {
            for (long o = o0; o < o1; o++)
            {
                float* wr = w + o * ldw;
                for (int r = 0; r < m; r++)
                {
                    float dot = Dot(a + (long)r * lda, wr, k);
                    float* cr = c + (long)r * ldc + o;
                    *cr = beta == 0f ? alpha * dot : alpha * dot + beta * *cr;
                }
            }
        });
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
