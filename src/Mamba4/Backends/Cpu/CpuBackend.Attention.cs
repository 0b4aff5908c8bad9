using System.Buffers;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Mamba4.Tensors;

namespace Mamba4.Backends.Cpu;

// Causal multi-head attention, one (batch, head) per work item. q, k, v, y: [B, L, H·D]; head h owns
// columns h·D … h·D + D − 1 of every row (row stride H·D); lse: [B, H, L].
//   s_ij  = (q_i · k_j) / √D + bias_ij
//   lse_i = log Σ_j exp(s_ij),   p_ij = exp(s_ij − lse_i),   y_i = Σ_j p_ij v_j
// Backward, flash-attention style: p is recomputed row by row from q, k and lse (no [L, L] tensor
// survives between forward and backward; one score row of L floats per work item is the only scratch):
//   D_i = dy_i · y_i,   dp_ij = dy_i · v_j,   ds_ij = p_ij (dp_ij − D_i)
//   dq_i = Σ_j ds_ij k_j / √D,   dk_j = Σ_i ds_ij q_i / √D,   dv_j = Σ_i p_ij dy_i
//
// The bias. Without keyPadding: keys j > i are excluded (plain causal).
// With keyPadding (RecBole's extended attention mask): bias_ij = 0 if j ≤ i and ids[b, j] ≠ 0, else −10000
// (added, not −inf), over all L keys. Reproduced as follows, per query row:
//  * no visible key (every j ≤ i is padding): every key gets the same −10000, which cancels in the softmax;
//    the row is a plain softmax over all L keys, future ones included, exactly as RecBole's. The stored
//    lse is that of the unbiased scores (the common −10000 left out, so it keeps its float32 precision).
//  * some visible key, and the masked keys' weights provably below e^−120 relative to the largest visible
//    one (Cauchy–Schwarz: a masked score is at most |q_i|·max_j|k_j|/√D − 10000): masked keys are skipped.
//    Their weight would be zero in float32 (and below 1e-52 in float64), so this is RecBole's result.
//  * otherwise (scores of magnitude ≳ 5000): the −10000 is added literally over all L keys.
// Forward and backward take the same decision through the same code on the same inputs.
public sealed unsafe partial class CpuBackend
{
    public void AttentionForward(Tensor q, Tensor k, Tensor v, int heads, Tensor? keyPadding, Tensor y, Tensor logSumExp)
    {
        int batch = q.Shape[0], l = q.Shape[1], d = q.Shape[2] / heads;
        float* pq = q.F32, pk = k.F32, pv = v.F32, py = y.F32, plse = logSumExp.F32;
        long* pad = PaddingPointer(keyPadding);
        CpuParallel.For((long)batch * heads, 1, (t0, t1) =>
        {
            var buf = ArrayPool<float>.Shared.Rent(l + d);
            fixed (float* scratch = buf)
                for (long t = t0; t < t1; t++)
                {
                    var head = new AttentionHead((int)(t / heads), (int)(t % heads), heads, l, d, pq, pk, pv, pad);
                    head.Forward(py + head.Offset, plse + t * l, scratch, scratch + l);
                }
            ArrayPool<float>.Shared.Return(buf);
        });
    }

    public void AttentionBackward(Tensor q, Tensor k, Tensor v, int heads, Tensor? keyPadding, Tensor y, Tensor logSumExp,
        Tensor dy, Tensor dq, Tensor dk, Tensor dv)
    {
        int batch = q.Shape[0], l = q.Shape[1], d = q.Shape[2] / heads;
        float* pq = q.F32, pk = k.F32, pv = v.F32, py = y.F32, plse = logSumExp.F32;
        float* pdy = dy.F32, pdq = dq.F32, pdk = dk.F32, pdv = dv.F32;
        long* pad = PaddingPointer(keyPadding);
        CpuParallel.For((long)batch * heads, 1, (t0, t1) =>
        {
            var buf = ArrayPool<float>.Shared.Rent(l + d);
            fixed (float* scratch = buf)
                for (long t = t0; t < t1; t++)
                {
                    var head = new AttentionHead((int)(t / heads), (int)(t % heads), heads, l, d, pq, pk, pv, pad);
                    long o = head.Offset;
                    head.Backward(py + o, plse + t * l, pdy + o, pdq + o, pdk + o, pdv + o, scratch, scratch + l);
                }
            ArrayPool<float>.Shared.Return(buf);
        });
    }

    private static long* PaddingPointer(Tensor? keyPadding)
    {
        if (keyPadding is null) return null;
        if (keyPadding.DType != DType.I64) throw new ArgumentException($"attention: keyPadding must be I64 ids, got {keyPadding.DType} {keyPadding.Shape}");
        return (long*)keyPadding.DataPointer;
    }

    /// <summary>One (batch, head): pointers to its first row in q, k, v and what the score rows need.</summary>
    private readonly struct AttentionHead
    {
        private const float Mask = -10000f;          // RecBole's additive mask value
        private const float NegligibleGap = 120f;    // e^−120 ≈ 8e-53: zero in float32, negligible in float64

        public readonly long Offset;                 // element offset of (b, row 0, head h) in [B, L, H·D]
        private readonly float* _q, _k, _v;
        private readonly long* _pad;                 // ids[b, ·] or null
        private readonly int _l, _d, _stride;
        private readonly float _scale, _maxKeyNorm;

        public AttentionHead(int b, int h, int heads, int l, int d, float* q, float* k, float* v, long* pad)
        {
            _l = l;
            _d = d;
            _stride = heads * d;
            _scale = 1f / MathF.Sqrt(d);
            Offset = (long)b * l * _stride + (long)h * d;
            _q = q + Offset;
            _k = k + Offset;
            _v = v + Offset;
            _pad = pad is null ? null : pad + (long)b * l;
            float maxNorm = 0;
            if (_pad is not null)
                for (int j = 0; j < l; j++)
                {
                    float* kj = _k + (long)j * _stride;
                    maxNorm = MathF.Max(maxNorm, MathF.Sqrt(Dot(kj, kj, d)));
                }
            _maxKeyNorm = maxNorm;
        }

        /// <summary>Writes the biased scores of query i to s[0..n) and returns n; keys from n on do not take part.</summary>
        private int Scores(int i, float* s)
        {
            float* qi = _q + (long)i * _stride;
            for (int j = 0; j <= i; j++) s[j] = Dot(qi, _k + (long)j * _stride, _d) * _scale;
            if (_pad is null) return i + 1;

            bool anyVisible = false;
            float maxVisible = float.NegativeInfinity;
            for (int j = 0; j <= i; j++)
                if (_pad[j] != 0) { anyVisible = true; maxVisible = MathF.Max(maxVisible, s[j]); }
            if (!anyVisible)
            {
                // Every key carries the same −10000: it cancels; all L keys take part.
                for (int j = i + 1; j < _l; j++) s[j] = Dot(qi, _k + (long)j * _stride, _d) * _scale;
                return _l;
            }
            float bound = MathF.Sqrt(Dot(qi, qi, _d)) * _maxKeyNorm * _scale; // |s_ij| ≤ bound for every key
            if (maxVisible - (bound + Mask) > NegligibleGap)
            {
                for (int j = 0; j <= i; j++) if (_pad[j] == 0) s[j] = float.NegativeInfinity;
                return i + 1;
            }
            // Scores large enough that a masked key could still count: RecBole's bias, literally.
            for (int j = 0; j <= i; j++) if (_pad[j] == 0) s[j] += Mask;
            for (int j = i + 1; j < _l; j++) s[j] = Dot(qi, _k + (long)j * _stride, _d) * _scale + Mask;
            return _l;
        }

        public void Forward(float* y, float* lse, float* s, float* acc)
        {
            for (int i = 0; i < _l; i++)
            {
                int n = Scores(i, s);
                var row = new Span<float>(s, n);
                float m = TensorPrimitives.Max(row);
                TensorPrimitives.Subtract(row, m, row);
                TensorPrimitives.Exp(row, row);
                float sum = TensorPrimitives.Sum(row);
                lse[i] = m + MathF.Log(sum);

                new Span<float>(acc, _d).Clear();
                for (int j = 0; j < n; j++)
                    if (s[j] != 0f) Axpy(s[j], _v + (long)j * _stride, acc, _d);
                TensorPrimitives.Multiply(new ReadOnlySpan<float>(acc, _d), 1f / sum, new Span<float>(y + (long)i * _stride, _d));
            }
        }

        public void Backward(float* y, float* lse, float* dy, float* dq, float* dk, float* dv, float* s, float* acc)
        {
            for (int j = 0; j < _l; j++)
            {
                new Span<float>(dk + (long)j * _stride, _d).Clear();
                new Span<float>(dv + (long)j * _stride, _d).Clear();
            }
            for (int i = 0; i < _l; i++)
            {
                int n = Scores(i, s);
                var row = new Span<float>(s, n);
                TensorPrimitives.Subtract(row, lse[i], row);
                TensorPrimitives.Exp(row, row); // p_ij

                long oi = (long)i * _stride;
                float* qi = _q + oi, dyi = dy + oi;
                float di = Dot(dyi, y + oi, _d);
                new Span<float>(acc, _d).Clear();
                for (int j = 0; j < n; j++)
                {
                    float p = s[j];
                    if (p == 0f) continue;
                    long oj = (long)j * _stride;
                    float ds = p * (Dot(dyi, _v + oj, _d) - di) * _scale;
                    Axpy(ds, _k + oj, acc, _d);       // dq_i += ds · k_j
                    Axpy(ds, qi, dk + oj, _d);        // dk_j += ds · q_i
                    Axpy(p, dyi, dv + oj, _d);        // dv_j += p · dy_i
                }
                new ReadOnlySpan<float>(acc, _d).CopyTo(new Span<float>(dq + oi, _d));
            }
        }
    }

    /// <summary>Σ a[i]·b[i], FMA over 8 lanes then the tail.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Dot(float* a, float* b, int n)
    {
        int i = 0;
        float s = 0;
        if (Vector256.IsHardwareAccelerated && n >= 8)
        {
            var acc = Vector256<float>.Zero;
            for (; i <= n - 8; i += 8) acc = Vector256.FusedMultiplyAdd(Vector256.Load(a + i), Vector256.Load(b + i), acc);
            s = Vector256.Sum(acc);
        }
        for (; i < n; i++) s += a[i] * b[i];
        return s;
    }

    /// <summary>y += alpha · x.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Axpy(float alpha, float* x, float* y, int n)
    {
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var va = Vector256.Create(alpha);
            for (; i <= n - 8; i += 8)
                Vector256.Store(Vector256.FusedMultiplyAdd(va, Vector256.Load(x + i), Vector256.Load(y + i)), y + i);
        }
        for (; i < n; i++) y[i] += alpha * x[i];
    }
}
