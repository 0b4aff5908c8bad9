using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Mamba4.Backends.Cpu;

/// <summary>
/// Matrix products with few rows (decoding: one token per stream, a batch of streams, a short prompt).
/// C[r, o] = α Σ_k A[r, k]·W[o, k] + β C[r, o] for r &lt; m ≤ <see cref="MaxRows"/>: each weight row is streamed
/// from memory once for all m rows of A (which stay in cache), split across cores. A general GEMM would pack
/// the weights first, which costs more than the product itself when m is small.
/// Every C[r, o] is computed by the same <see cref="Dot"/> order whatever m is (four rows of A × three weight
/// rows in <see cref="Dot4x3"/>, three × two in <see cref="Dot3x2"/>, three × one in <see cref="Dot3"/>, each with
/// Dot's accumulators): a stream's logits do not depend on how many other streams share its batched step.
/// </summary>
internal static unsafe class CpuGemv
{
    /// <summary>
    /// Largest m routed here rather than to the packed GEMM. Measured with bench `serve` (the 130M step by batch size and
    /// kernel, interleaved rounds, three runs on a busy machine): with the 4×3 tiles this kernel beat the GEMM at 8 and
    /// 16 rows in every run and at 32 and 64 rows in two of three, so 64 — which also keeps every stream's logits
    /// independent of the batch up to 64 streams.
    /// </summary>
    public static int MaxRows { get; set; } = 64;

    /// <summary>
    /// Products of fewer multiply-adds (m·n·k) run on the calling thread: a fork/join costs about as much as such a product
    /// itself (x_proj, 1536 → 80, and dt_proj, 48 → 1536, of the 130M shape at batch 1: 48 of its 97 fork/joins a token).
    /// </summary>
    public static long SerialWork { get; set; } = 1 << 18;

    /// <summary>Weight rows per parallel chunk of an m-row product: about 64K multiply-adds, or all n rows (one chunk, no
    /// fork) below <see cref="SerialWork"/>. The split never changes a result: every output is one Dot whatever the chunk.</summary>
    internal static long RowGrain(int m, int n, int k) =>
        (long)m * n * k < SerialWork ? Math.Max(1, n) : Math.Max(16, 65536 / Math.Max(1, k * Math.Min(m, 8)));

    public static void RowsTimesTransposed(int m, int n, int k, float alpha, float* a, int lda, float* w, int ldw, float beta, float* c, int ldc)
    {
        CpuParallel.For(n, RowGrain(m, n, k), (o0, o1) =>
        {
            for (long o = o0; o < o1; o++)
            {
                float* wr = w + o * ldw;
                int r = 0;
                if (Tile4x3 && k >= 32 && o + 2 < o1 && m >= 4)
                {
                    // Three weight rows at once against four rows of A (24 zmm accumulators, each pair holding one Dot's four).
                    float* wr1 = wr + ldw, wr2 = wr1 + ldw;
                    for (; r + 4 <= m; r += 4)
                        Dot4x3(a + (long)r * lda, lda, wr, wr1, wr2, k, c + (long)r * ldc + o, ldc, alpha, beta);
                    for (; r < m; r++)
                    {
                        float* x = a + (long)r * lda;
                        float* cr = c + (long)r * ldc + o;
                        Store(cr, Dot(x, wr, k), alpha, beta);
                        Store(cr + 1, Dot(x, wr1, k), alpha, beta);
                        Store(cr + 2, Dot(x, wr2, k), alpha, beta);
                    }
                    o += 2;
                    continue;
                }
                if (Wide && k >= 32 && o + 1 < o1 && m >= 3)
                {
                    // Two weight rows at once (24 accumulators: needs the 32 vector registers of AVX-512VL).
                    float* wr1 = wr + ldw;
                    for (; r + 3 <= m; r += 3)
                    {
                        float* x0 = a + (long)r * lda;
                        Dot3x2(x0, x0 + lda, x0 + 2L * lda, wr, wr1, k, out var d00, out var d01, out var d10, out var d11, out var d20, out var d21);
                        float* cr = c + (long)r * ldc + o;
                        Store(cr, d00, alpha, beta); Store(cr + 1, d01, alpha, beta);
                        Store(cr + ldc, d10, alpha, beta); Store(cr + ldc + 1, d11, alpha, beta);
                        Store(cr + 2L * ldc, d20, alpha, beta); Store(cr + 2L * ldc + 1, d21, alpha, beta);
                    }
                    for (int rr = r; rr < m; rr++)
                    {
                        Store(c + (long)rr * ldc + o, Dot(a + (long)rr * lda, wr, k), alpha, beta);
                        Store(c + (long)rr * ldc + o + 1, Dot(a + (long)rr * lda, wr1, k), alpha, beta);
                    }
                    o++;
                    continue;
                }
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

    /// <summary>The 3×2 tile kernel can run here (AVX-512VL gives the 32 vector registers it needs).</summary>
    public static bool WideSupported { get; } = Vector256.IsHardwareAccelerated && Avx512F.VL.IsSupported;

    /// <summary>The 4×3 tile kernel on 512-bit vectors can run here (AVX-512F).</summary>
    public static bool Tile4x3Supported { get; } = Vector512.IsHardwareAccelerated && Avx512F.IsSupported;

    /// <summary>Whether the 3×2 tile kernel runs: where supported, unless <see cref="EngineSettings.CpuGemvTiles"/> says otherwise.</summary>
    public static bool Wide => WideSupported && Backend.Settings.CpuGemvTiles is CpuGemvTiles.Auto or CpuGemvTiles.Up3x2;

    /// <summary>Whether the 4×3 tile kernel runs: where supported, unless <see cref="EngineSettings.CpuGemvTiles"/> says otherwise.</summary>
    public static bool Tile4x3 => Tile4x3Supported && Backend.Settings.CpuGemvTiles is CpuGemvTiles.Auto;

    /// <summary>
    /// Twelve dot products: rows x, x + lda, x + 2·lda, x + 3·lda of A against weight rows y0, y1, y2, each bit-identical
    /// to <see cref="Dot"/> (k ≥ 32): Dot's four 8-lane accumulators s0..s3 (k offsets 0–7, 8–15, 16–23, 24–31 of
    /// each 32-block) are the two halves of two 16-lane ones (lanes are independent, so the sums are the same), and
    /// the final reduction is Dot's: Sum((s0 + s1) + (s2 + s3)) after the 8-wide tail has gone into s0.
    /// </summary>
    private static void Dot4x3(float* x, int lda, float* y0, float* y1, float* y2, int k, float* c, int ldc, float alpha, float beta)
    {
        float* x1 = x + lda, x2 = x1 + lda, x3 = x2 + lda;
        Vector512<float> p00 = default, p01 = default, p02 = default, p10 = default, p11 = default, p12 = default;   // k offsets 0–15
        Vector512<float> p20 = default, p21 = default, p22 = default, p30 = default, p31 = default, p32 = default;
        Vector512<float> q00 = default, q01 = default, q02 = default, q10 = default, q11 = default, q12 = default;   // k offsets 16–31
        Vector512<float> q20 = default, q21 = default, q22 = default, q30 = default, q31 = default, q32 = default;
        int i = 0;
        for (; i <= k - 32; i += 32)
        {
            var w0 = Vector512.Load(y0 + i); var w1 = Vector512.Load(y1 + i); var w2 = Vector512.Load(y2 + i);
            var v = Vector512.Load(x + i); p00 = Vector512.FusedMultiplyAdd(v, w0, p00); p01 = Vector512.FusedMultiplyAdd(v, w1, p01); p02 = Vector512.FusedMultiplyAdd(v, w2, p02);
            v = Vector512.Load(x1 + i); p10 = Vector512.FusedMultiplyAdd(v, w0, p10); p11 = Vector512.FusedMultiplyAdd(v, w1, p11); p12 = Vector512.FusedMultiplyAdd(v, w2, p12);
            v = Vector512.Load(x2 + i); p20 = Vector512.FusedMultiplyAdd(v, w0, p20); p21 = Vector512.FusedMultiplyAdd(v, w1, p21); p22 = Vector512.FusedMultiplyAdd(v, w2, p22);
            v = Vector512.Load(x3 + i); p30 = Vector512.FusedMultiplyAdd(v, w0, p30); p31 = Vector512.FusedMultiplyAdd(v, w1, p31); p32 = Vector512.FusedMultiplyAdd(v, w2, p32);
            w0 = Vector512.Load(y0 + i + 16); w1 = Vector512.Load(y1 + i + 16); w2 = Vector512.Load(y2 + i + 16);
            v = Vector512.Load(x + i + 16); q00 = Vector512.FusedMultiplyAdd(v, w0, q00); q01 = Vector512.FusedMultiplyAdd(v, w1, q01); q02 = Vector512.FusedMultiplyAdd(v, w2, q02);
            v = Vector512.Load(x1 + i + 16); q10 = Vector512.FusedMultiplyAdd(v, w0, q10); q11 = Vector512.FusedMultiplyAdd(v, w1, q11); q12 = Vector512.FusedMultiplyAdd(v, w2, q12);
            v = Vector512.Load(x2 + i + 16); q20 = Vector512.FusedMultiplyAdd(v, w0, q20); q21 = Vector512.FusedMultiplyAdd(v, w1, q21); q22 = Vector512.FusedMultiplyAdd(v, w2, q22);
            v = Vector512.Load(x3 + i + 16); q30 = Vector512.FusedMultiplyAdd(v, w0, q30); q31 = Vector512.FusedMultiplyAdd(v, w1, q31); q32 = Vector512.FusedMultiplyAdd(v, w2, q32);
        }
        Finish(p00, q00, x, y0, i, k, c, alpha, beta); Finish(p01, q01, x, y1, i, k, c + 1, alpha, beta); Finish(p02, q02, x, y2, i, k, c + 2, alpha, beta);
        c += ldc;
        Finish(p10, q10, x1, y0, i, k, c, alpha, beta); Finish(p11, q11, x1, y1, i, k, c + 1, alpha, beta); Finish(p12, q12, x1, y2, i, k, c + 2, alpha, beta);
        c += ldc;
        Finish(p20, q20, x2, y0, i, k, c, alpha, beta); Finish(p21, q21, x2, y1, i, k, c + 1, alpha, beta); Finish(p22, q22, x2, y2, i, k, c + 2, alpha, beta);
        c += ldc;
        Finish(p30, q30, x3, y0, i, k, c, alpha, beta); Finish(p31, q31, x3, y1, i, k, c + 1, alpha, beta); Finish(p32, q32, x3, y2, i, k, c + 2, alpha, beta);
    }

    /// <summary>The end of <see cref="Dot"/> from its accumulators held as two 16-lane halves (p = s0|s1, q = s2|s3) after the 32-blocks up to i.</summary>
    private static void Finish(Vector512<float> p, Vector512<float> q, float* x, float* y, int i, int k, float* c, float alpha, float beta)
    {
        Vector256<float> s0 = p.GetLower(), s1 = p.GetUpper(), s2 = q.GetLower(), s3 = q.GetUpper();
        for (; i <= k - 8; i += 8) s0 = Vector256.FusedMultiplyAdd(Vector256.Load(x + i), Vector256.Load(y + i), s0);
        float sum = Vector256.Sum((s0 + s1) + (s2 + s3));
        for (; i < k; i++) sum += x[i] * y[i];
        Store(c, sum, alpha, beta);
    }

    private static void Store(float* cr, float dot, float alpha, float beta) => *cr = beta == 0f ? alpha * dot : alpha * dot + beta * *cr;

    /// <summary>Six dot products: three rows of A against two weight rows, each bit-identical to <see cref="Dot"/> (k ≥ 32).</summary>
    private static void Dot3x2(float* x0, float* x1, float* x2, float* y, float* z, int k,
        out float d00, out float d01, out float d10, out float d11, out float d20, out float d21)
    {
        Vector256<float> p0 = default, p1 = default, p2 = default, p3 = default;   // x0·y
        Vector256<float> q0 = default, q1 = default, q2 = default, q3 = default;   // x0·z
        Vector256<float> r0 = default, r1 = default, r2 = default, r3 = default;   // x1·y
        Vector256<float> s0 = default, s1 = default, s2 = default, s3 = default;   // x1·z
        Vector256<float> t0 = default, t1 = default, t2 = default, t3 = default;   // x2·y
        Vector256<float> u0 = default, u1 = default, u2 = default, u3 = default;   // x2·z
        int i = 0;
        for (; i <= k - 32; i += 32)
        {
            var y0 = Vector256.Load(y + i); var z0 = Vector256.Load(z + i);
            var v = Vector256.Load(x0 + i); p0 = Vector256.FusedMultiplyAdd(v, y0, p0); q0 = Vector256.FusedMultiplyAdd(v, z0, q0);
            v = Vector256.Load(x1 + i); r0 = Vector256.FusedMultiplyAdd(v, y0, r0); s0 = Vector256.FusedMultiplyAdd(v, z0, s0);
            v = Vector256.Load(x2 + i); t0 = Vector256.FusedMultiplyAdd(v, y0, t0); u0 = Vector256.FusedMultiplyAdd(v, z0, u0);
            var y1 = Vector256.Load(y + i + 8); var z1 = Vector256.Load(z + i + 8);
            v = Vector256.Load(x0 + i + 8); p1 = Vector256.FusedMultiplyAdd(v, y1, p1); q1 = Vector256.FusedMultiplyAdd(v, z1, q1);
            v = Vector256.Load(x1 + i + 8); r1 = Vector256.FusedMultiplyAdd(v, y1, r1); s1 = Vector256.FusedMultiplyAdd(v, z1, s1);
            v = Vector256.Load(x2 + i + 8); t1 = Vector256.FusedMultiplyAdd(v, y1, t1); u1 = Vector256.FusedMultiplyAdd(v, z1, u1);
            var y2 = Vector256.Load(y + i + 16); var z2 = Vector256.Load(z + i + 16);
            v = Vector256.Load(x0 + i + 16); p2 = Vector256.FusedMultiplyAdd(v, y2, p2); q2 = Vector256.FusedMultiplyAdd(v, z2, q2);
            v = Vector256.Load(x1 + i + 16); r2 = Vector256.FusedMultiplyAdd(v, y2, r2); s2 = Vector256.FusedMultiplyAdd(v, z2, s2);
            v = Vector256.Load(x2 + i + 16); t2 = Vector256.FusedMultiplyAdd(v, y2, t2); u2 = Vector256.FusedMultiplyAdd(v, z2, u2);
            var y3 = Vector256.Load(y + i + 24); var z3 = Vector256.Load(z + i + 24);
            v = Vector256.Load(x0 + i + 24); p3 = Vector256.FusedMultiplyAdd(v, y3, p3); q3 = Vector256.FusedMultiplyAdd(v, z3, q3);
            v = Vector256.Load(x1 + i + 24); r3 = Vector256.FusedMultiplyAdd(v, y3, r3); s3 = Vector256.FusedMultiplyAdd(v, z3, s3);
            v = Vector256.Load(x2 + i + 24); t3 = Vector256.FusedMultiplyAdd(v, y3, t3); u3 = Vector256.FusedMultiplyAdd(v, z3, u3);
        }
        for (; i <= k - 8; i += 8)
        {
            var yv = Vector256.Load(y + i); var zv = Vector256.Load(z + i);
            var v = Vector256.Load(x0 + i); p0 = Vector256.FusedMultiplyAdd(v, yv, p0); q0 = Vector256.FusedMultiplyAdd(v, zv, q0);
            v = Vector256.Load(x1 + i); r0 = Vector256.FusedMultiplyAdd(v, yv, r0); s0 = Vector256.FusedMultiplyAdd(v, zv, s0);
            v = Vector256.Load(x2 + i); t0 = Vector256.FusedMultiplyAdd(v, yv, t0); u0 = Vector256.FusedMultiplyAdd(v, zv, u0);
        }
        d00 = Vector256.Sum((p0 + p1) + (p2 + p3)); d01 = Vector256.Sum((q0 + q1) + (q2 + q3));
        d10 = Vector256.Sum((r0 + r1) + (r2 + r3)); d11 = Vector256.Sum((s0 + s1) + (s2 + s3));
        d20 = Vector256.Sum((t0 + t1) + (t2 + t3)); d21 = Vector256.Sum((u0 + u1) + (u2 + u3));
        for (; i < k; i++)
        {
            d00 += x0[i] * y[i]; d01 += x0[i] * z[i];
            d10 += x1[i] * y[i]; d11 += x1[i] * z[i];
            d20 += x2[i] * y[i]; d21 += x2[i] * z[i];
        }
    }

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
