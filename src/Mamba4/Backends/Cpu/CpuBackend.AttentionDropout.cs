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
// One (batch, head) per work item; each row's scores and softmax are computed in double (so the literal −10000
// costs no precision) and recomputed in the backward rather than stored. A plain loop: O(L²·D) per head like the
// fused kernel, without its blocking; evaluation (no dropout) uses the fused kernel.
public sealed unsafe partial class CpuBackend
{
    public void AttentionDropoutForward(Tensor q, Tensor k, Tensor v, int heads, Tensor? keyPadding, float p, ulong seed, Tensor y)
    {
        int batch = q.Shape[0], len = q.Shape[1], width = q.Shape[2], dh = width / heads;
        float* pq = q.F32, pk = k.F32, pv = v.F32, py = y.F32;
        long* pad = keyPadding is null ? null : (long*)keyPadding.DataPointer;
        double scale = 1.0 / Math.Sqrt(dh), keepScale = 1.0 / (1.0 - p);
        ulong threshold = (ulong)(p * 18446744073709551616.0);
        CpuParallel.For((long)batch * heads, 1, (t0, t1) =>
        {
            var s = new double[len];
            var acc = new double[dh];
            for (long t = t0; t < t1; t++)
            {
                long b = t / heads;
                int hd = (int)(t % heads);
                for (int i = 0; i < len; i++)
                {
                    int keys = RowScores(pq, pk, pad, b, i, len, width, hd * dh, dh, scale, s);
                    double lse = LogSumExp(s, keys);
                    Array.Clear(acc);
                    ulong rowIndex = ((ulong)t * (ulong)len + (ulong)i) * (ulong)len;
                    for (int j = 0; j < keys; j++)
                    {
                        if (SplitMix64(seed, rowIndex + (ulong)j) < threshold) continue;
                        double a = Math.Exp(s[j] - lse) * keepScale;
                        float* vj = pv + (b * len + j) * width + hd * dh;
                        for (int e = 0; e < dh; e++) acc[e] += a * vj[e];
                    }
                    float* yi = py + (b * len + i) * width + hd * dh;
                    for (int e = 0; e < dh; e++) yi[e] = (float)acc[e];
                }
            }
        });
    }

    public void AttentionDropoutBackward(Tensor q, Tensor k, Tensor v, int heads, Tensor? keyPadding, float p, ulong seed, Tensor y,
        Tensor dy, Tensor dq, Tensor dk, Tensor dv)
    {
        int batch = q.Shape[0], len = q.Shape[1], width = q.Shape[2], dh = width / heads;
        float* pq = q.F32, pk = k.F32, pv = v.F32, py = y.F32, pdy = dy.F32, pdq = dq.F32, pdk = dk.F32, pdv = dv.F32;
        long* pad = keyPadding is null ? null : (long*)keyPadding.DataPointer;
        double scale = 1.0 / Math.Sqrt(dh), keepScale = 1.0 / (1.0 - p);
        ulong threshold = (ulong)(p * 18446744073709551616.0);
        CpuParallel.For((long)batch * heads, 1, (t0, t1) =>
        {
            var s = new double[len];
            var dqAcc = new double[dh];
            var dkAcc = new double[len * dh];
            var dvAcc = new double[len * dh];
            for (long t = t0; t < t1; t++)
            {
                long b = t / heads;
                int hd = (int)(t % heads), col = hd * dh;
                Array.Clear(dkAcc);
                Array.Clear(dvAcc);
                for (int i = 0; i < len; i++)
                {
                    int keys = RowScores(pq, pk, pad, b, i, len, width, col, dh, scale, s);
                    double lse = LogSumExp(s, keys);
                    float* dyi = pdy + (b * len + i) * width + col, yi = py + (b * len + i) * width + col, qi = pq + (b * len + i) * width + col;
                    double dRow = 0;
                    for (int e = 0; e < dh; e++) dRow += (double)dyi[e] * yi[e];
                    Array.Clear(dqAcc);
                    ulong rowIndex = ((ulong)t * (ulong)len + (ulong)i) * (ulong)len;
                    for (int j = 0; j < keys; j++)
                    {
                        double pij = Math.Exp(s[j] - lse);
                        bool keep = SplitMix64(seed, rowIndex + (ulong)j) >= threshold;
                        float* vj = pv + (b * len + j) * width + col, kj = pk + (b * len + j) * width + col;
                        double g = 0;
                        if (keep)
                        {
                            double a = pij * keepScale;
                            for (int e = 0; e < dh; e++)
                            {
                                g += (double)dyi[e] * vj[e];
                                dvAcc[j * dh + e] += a * dyi[e];
                            }
                        }
                        double ds = pij * ((keep ? g * keepScale : 0.0) - dRow) * scale;
                        for (int e = 0; e < dh; e++)
                        {
                            dqAcc[e] += ds * kj[e];
                            dkAcc[j * dh + e] += ds * qi[e];
                        }
                    }
                    float* dqi = pdq + (b * len + i) * width + col;
                    for (int e = 0; e < dh; e++) dqi[e] = (float)dqAcc[e];
                }
                for (int j = 0; j < len; j++)
                {
                    float* dkj = pdk + (b * len + j) * width + col, dvj = pdv + (b * len + j) * width + col;
                    for (int e = 0; e < dh; e++)
                    {
                        dkj[e] = (float)dkAcc[j * dh + e];
                        dvj[e] = (float)dvAcc[j * dh + e];
                    }
                }
            }
        });
    }

    /// <summary>Scores of query row i against its keys into s; returns how many keys (i + 1 plain causal, L with RecBole's mask).</summary>
    private static int RowScores(float* pq, float* pk, long* pad, long b, int i, int len, int width, int col, int dh, double scale, double[] s)
    {
        float* qi = pq + (b * len + i) * width + col;
        int keys = pad == null ? i + 1 : len;
        for (int j = 0; j < keys; j++)
        {
            float* kj = pk + (b * len + j) * width + col;
            double dot = 0;
            for (int e = 0; e < dh; e++) dot += (double)qi[e] * kj[e];
            s[j] = dot * scale;
            if (pad != null && (j > i || pad[b * len + j] == 0)) s[j] -= 10000.0;
        }
        return keys;
    }

    private static double LogSumExp(double[] s, int n)
    {
        double m = double.NegativeInfinity;
        for (int j = 0; j < n; j++) m = Math.Max(m, s[j]);
        double sum = 0;
        for (int j = 0; j < n; j++) sum += Math.Exp(s[j] - m);
        return m + Math.Log(sum);
    }
}
