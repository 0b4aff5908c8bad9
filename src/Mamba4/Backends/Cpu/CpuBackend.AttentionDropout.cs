using System.Numerics.Tensors;
using Mamba4.Tensors;

namespace Mamba4.Backends.Cpu;

// Causal multi-head attention with dropout on the attention probabilities (RecBole's attn_dropout), the training
// path of SASRec. Same layout and bias as CpuBackend.Attention.cs (q, k, v, y: [B, L, H·D], head h owns columns
// h·D … h·D + D − 1; without keyPadding keys j > i are excluded; with it, RecBole's additive −10000 over all L keys).
//   s_ij = q_i · k_j / √D + bias_ij,   p_ij = softmax_j(s_ij),   a_ij = p_ij · m_ij / (1 − p)
//   y_i  = Σ_j a_ij v_j
// m_ij ∈ {0, 1} is keep-with-probability 1 − p, drawn from a counter-based hash of (seed, ((b·H + h)·L + i)·L + j):
// the same seed gives the same mask on any thread split, and the backward regenerates it instead of storing it.
// Backward (g_ij = dy_i · v_j):
//   dv_j = Σ_i a_ij dy_i,   ds_ij = p_ij (g_ij m_ij / (1 − p) − D_i),   D_i = Σ_j a_ij g_ij = dy_i · y_i
//   dq_i = Σ_j ds_ij k_j / √D,   dk_j = Σ_i ds_ij q_i / √D
// One (batch, head) per work item; each row's scores are kept in double (so the literal −10000 costs no precision)
// and its softmax recomputed in the backward rather than stored. Row-at-a-time SIMD dot products and axpys: O(L²·D)
// per head like the fused kernel, without its register blocking; evaluation (no dropout) uses the fused kernel.
public sealed unsafe partial class CpuBackend
{
    public void AttentionDropoutForward(Tensor q, Tensor k, Tensor v, int heads, Tensor? keyPadding, float p, ulong seed, Tensor y)
    {
        int batch = q.Shape[0], len = q.Shape[1], width = q.Shape[2], dh = width / heads;
        float* pq = q.F32, pk = k.F32, pv = v.F32, py = y.F32;
        long* pad = PaddingPointer(keyPadding);
        float scale = 1f / MathF.Sqrt(dh), keepScale = 1f / (1f - p);
        ulong threshold = DropoutThreshold(p);
        CpuParallel.For((long)batch * heads, 1, (t0, t1) =>
        {
            var s = new double[len];
            var w = new float[len];
            for (long t = t0; t < t1; t++)
            {
                long b = t / heads;
                int col = (int)(t % heads) * dh;
                for (int i = 0; i < len; i++)
                {
                    int keys = RowSoftmax(pq, pk, pad, b, i, len, width, col, dh, scale, s, w);
                    var yi = new Span<float>(py + (b * len + i) * width + col, dh);
                    yi.Clear();
                    ulong rowIndex = ((ulong)t * (ulong)len + (ulong)i) * (ulong)len;
                    for (int j = 0; j < keys; j++)
                    {
                        if (SplitMix64(seed, rowIndex + (ulong)j) < threshold) continue;
                        TensorPrimitives.MultiplyAdd(new ReadOnlySpan<float>(pv + (b * len + j) * width + col, dh), w[j] * keepScale, yi, yi);
                    }
                }
            }
        });
    }

    public void AttentionDropoutBackward(Tensor q, Tensor k, Tensor v, int heads, Tensor? keyPadding, float p, ulong seed, Tensor y,
        Tensor dy, Tensor dq, Tensor dk, Tensor dv)
    {
        int batch = q.Shape[0], len = q.Shape[1], width = q.Shape[2], dh = width / heads;
        float* pq = q.F32, pk = k.F32, pv = v.F32, py = y.F32, pdy = dy.F32, pdq = dq.F32, pdk = dk.F32, pdv = dv.F32;
        long* pad = PaddingPointer(keyPadding);
        float scale = 1f / MathF.Sqrt(dh), keepScale = 1f / (1f - p);
        ulong threshold = DropoutThreshold(p);
        CpuParallel.For((long)batch * heads, 1, (t0, t1) =>
        {
            var s = new double[len];
            var w = new float[len];
            for (long t = t0; t < t1; t++)
            {
                long b = t / heads;
                int col = (int)(t % heads) * dh;
                // dk and dv rows of this head accumulate over the queries: clear them first.
                for (int j = 0; j < len; j++)
                {
                    new Span<float>(pdk + (b * len + j) * width + col, dh).Clear();
                    new Span<float>(pdv + (b * len + j) * width + col, dh).Clear();
                }
                for (int i = 0; i < len; i++)
                {
                    int keys = RowSoftmax(pq, pk, pad, b, i, len, width, col, dh, scale, s, w);
                    var dyi = new ReadOnlySpan<float>(pdy + (b * len + i) * width + col, dh);
                    var qi = new ReadOnlySpan<float>(pq + (b * len + i) * width + col, dh);
                    var dqi = new Span<float>(pdq + (b * len + i) * width + col, dh);
                    dqi.Clear();
                    float dRow = TensorPrimitives.Dot(dyi, new ReadOnlySpan<float>(py + (b * len + i) * width + col, dh));
                    ulong rowIndex = ((ulong)t * (ulong)len + (ulong)i) * (ulong)len;
                    for (int j = 0; j < keys; j++)
                    {
                        float pij = w[j];
                        float g = 0f;
                        if (SplitMix64(seed, rowIndex + (ulong)j) >= threshold)
                        {
                            var dvj = new Span<float>(pdv + (b * len + j) * width + col, dh);
                            TensorPrimitives.MultiplyAdd(dyi, pij * keepScale, dvj, dvj);
                            g = TensorPrimitives.Dot(dyi, new ReadOnlySpan<float>(pv + (b * len + j) * width + col, dh)) * keepScale;
                        }
                        float ds = pij * (g - dRow) * scale;
                        if (ds == 0f) continue;
                        var dkj = new Span<float>(pdk + (b * len + j) * width + col, dh);
                        TensorPrimitives.MultiplyAdd(new ReadOnlySpan<float>(pk + (b * len + j) * width + col, dh), ds, dqi, dqi);
                        TensorPrimitives.MultiplyAdd(qi, ds, dkj, dkj);
                    }
                }
            }
        });
    }

    /// <summary>
    /// Softmax weights of query row i into w (float), its scores in s (double, so RecBole's literal −10000 costs no
    /// precision); returns how many keys take part (i + 1 plain causal, all L with RecBole's mask).
    /// </summary>
    private static int RowSoftmax(float* pq, float* pk, long* pad, long b, int i, int len, int width, int col, int dh, float scale, double[] s, float[] w)
    {
        var qi = new ReadOnlySpan<float>(pq + (b * len + i) * width + col, dh);
        int keys = pad == null ? i + 1 : len;
        double m = double.NegativeInfinity;
        for (int j = 0; j < keys; j++)
        {
            double sj = TensorPrimitives.Dot(qi, new ReadOnlySpan<float>(pk + (b * len + j) * width + col, dh)) * scale;
            if (pad != null && (j > i || pad[b * len + j] == 0)) sj -= 10000.0;
            s[j] = sj;
            m = Math.Max(m, sj);
        }
        for (int j = 0; j < keys; j++) w[j] = (float)(s[j] - m);
        var wk = w.AsSpan(0, keys);
        TensorPrimitives.Exp(wk, wk);
        float inv = 1f / TensorPrimitives.Sum(wk);
        TensorPrimitives.Multiply(wk, inv, wk);
        return keys;
    }
}
