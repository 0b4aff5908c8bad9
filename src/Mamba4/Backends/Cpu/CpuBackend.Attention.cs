using System.Buffers;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Mamba4.Tensors;

namespace Mamba4.Backends.Cpu;

// Multi-head attention (IBackend.AttentionForward / AttentionBackward / AttentionStep; the spec: AttentionSpec.cs),
// one (batch, head) per work item. q, k, v, y: [B, L, H·D]; head h owns columns h·D … h·D + D − 1 of every row
// (row stride H·D); lse: [B, H, L].
//   s_ij  = (q_i · k_j) / √D + bias_ij
//   lse_i = log Σ_j exp(s_ij),   p_ij = exp(s_ij − lse_i),   a_ij = p_ij · m_ij,   y_i = Σ_j a_ij v_j
// m_ij = 1 without dropout; with it m_ij = 1/(1 − p) if SplitMix64(seed, ((b·H + h)·L + i)·L + j) ≥ p·2⁶⁴, else 0
// (RecBole's attn_dropout; the same seed gives the same mask on any thread split, and the backward regenerates it).
// Backward, flash-attention style: p is recomputed from q, k and lse, four query rows at a time (no [L, L]
// tensor survives between forward and backward):
//   D_i = dy_i · y_i,   dp_ij = dy_i · v_j,   ds_ij = p_ij (m_ij dp_ij − D_i)
//   dq_i = Σ_j ds_ij k_j / √D,   dk_j = Σ_i ds_ij q_i / √D,   dv_j = Σ_i a_ij dy_i
//
// The bias. Causal without keyPadding: keys j > i are excluded. Non-causal (Transformer encoders): no bias, or with
// keyPadding RecBole's bidirectional mask: bias_ij = −10000 where ids[b, j] = 0, else 0 (none when every id is padding).
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
//
// Kernel layout per work item (scratch rented once per chunk of work items): K is packed transposed
// (kᵀ: [D, Lp]) so a block of 4 query rows × 16 keys is 8 FMA accumulators with no horizontal sums; V (and
// for the backward K, dK, dV) are packed as [L, Dp] rows zero-padded to a multiple of 8 floats.
public sealed unsafe partial class CpuBackend
{
    public void AttentionForward(AttentionSpec spec, Tensor q, Tensor k, Tensor v, Tensor y, Tensor logSumExp)
    {
        var shape = AttentionShape.Of(spec, q);
        float* pq = q.F32, pk = k.F32, pv = v.F32, py = y.F32, plse = logSumExp.F32;
        long* pad = PaddingPointer(spec.KeyPadding);
        CpuParallel.For((long)shape.Batch * shape.Heads, 1, (t0, t1) =>
        {
            var buf = ArrayPool<float>.Shared.Rent(shape.ScratchFloats(backward: false));
            fixed (float* scratch = buf)
                for (long t = t0; t < t1; t++)
                {
                    var head = new AttentionHead(shape, t, pq, pk, pv, pad, scratch, backward: false);
                    head.Forward(py + head.Offset, plse + t * shape.L);
                }
            ArrayPool<float>.Shared.Return(buf);
        });
    }

    public void AttentionBackward(AttentionSpec spec, Tensor q, Tensor k, Tensor v, Tensor y, Tensor logSumExp,
        Tensor dy, Tensor dq, Tensor dk, Tensor dv)
    {
        var shape = AttentionShape.Of(spec, q);
        float* pq = q.F32, pk = k.F32, pv = v.F32, py = y.F32, plse = logSumExp.F32;
        float* pdy = dy.F32, pdq = dq.F32, pdk = dk.F32, pdv = dv.F32;
        long* pad = PaddingPointer(spec.KeyPadding);
        CpuParallel.For((long)shape.Batch * shape.Heads, 1, (t0, t1) =>
        {
            var buf = ArrayPool<float>.Shared.Rent(shape.ScratchFloats(backward: true));
            fixed (float* scratch = buf)
                for (long t = t0; t < t1; t++)
                {
                    var head = new AttentionHead(shape, t, pq, pk, pv, pad, scratch, backward: true);
                    long o = head.Offset;
                    head.Backward(py + o, plse + t * shape.L, pdy + o, pdq + o, pdk + o, pdv + o);
                }
            ArrayPool<float>.Shared.Return(buf);
        });
    }

    // One query per stream against the cached keys 0..t−1:  s_j = q·k_j/√D,  p = softmax(s),  y = Σ_j p_j v_j.
    public void AttentionStep(Tensor q, Tensor kCache, Tensor vCache, int length, int heads, Tensor y)
    {
        int batch = q.Shape[0], width = q.Shape[1], d = width / heads, capacity = kCache.Shape[1];
        float* pq = q.F32, pk = kCache.F32, pv = vCache.F32, py = y.F32;
        float scale = 1f / MathF.Sqrt(d);
        CpuParallel.For((long)batch * heads, 1, (s0, s1) =>
        {
            var scores = new float[length];
            for (long item = s0; item < s1; item++)
            {
                long b = item / heads, h = item % heads;
                var qh = new ReadOnlySpan<float>(pq + b * width + h * d, d);
                float* keys = pk + b * capacity * width + h * d, values = pv + b * capacity * width + h * d;
                for (int j = 0; j < length; j++) scores[j] = TensorPrimitives.Dot(qh, new ReadOnlySpan<float>(keys + (long)j * width, d)) * scale;
                TensorPrimitives.SoftMax(scores, scores);
                var yh = new Span<float>(py + b * width + h * d, d);
                yh.Clear();
                for (int j = 0; j < length; j++)
                    TensorPrimitives.MultiplyAdd(new ReadOnlySpan<float>(values + (long)j * width, d), scores[j], yh, yh);
            }
        });
    }

    private static long* PaddingPointer(Tensor? keyPadding)
    {
        if (keyPadding is null) return null;
        if (keyPadding.DType != DType.I64) throw new ArgumentException($"attention: keyPadding must be I64 ids, got {keyPadding.DType} {keyPadding.Shape}");
        return (long*)keyPadding.DataPointer;
    }

    /// <summary>Sizes and spec of one call; DropThreshold 0: no dropout (Keep = 1/(1 − p)).</summary>
    private readonly record struct AttentionShape(int Batch, int L, int D, int Heads, bool Causal, ulong Seed, ulong DropThreshold, float Keep)
    {
        public static AttentionShape Of(in AttentionSpec spec, Tensor q) =>
            new(q.Shape[0], q.Shape[1], q.Shape[2] / spec.Heads, spec.Heads, spec.Causal, spec.Seed,
                spec.HasDropout ? DropoutThreshold(spec.DropoutP) : 0, spec.HasDropout ? 1f / (1f - spec.DropoutP) : 1f);


        public int Lp => RoundUp8(Math.Max(1, L));
        public int Dp => RoundUp8(D);
        public int Stride => Heads * D;

        /// <summary>forward: kᵀ, V, S, Out, key bias, mask; backward: kᵀ, vᵀ, K, dK, dV, S, dS, Out, Qb, dYb, key bias, mask.</summary>
        public int ScratchFloats(bool backward) => 2 * Lp + (backward
            ? 2 * D * Lp + 3 * L * Dp + 2 * Block * Lp + 3 * Block * Dp
            : D * Lp + L * Dp + Block * Lp + Block * Dp);
    }

    private const int Block = 4; // query rows per block

    private static int RoundUp8(int n) => (n + 7) & ~7;

    /// <summary>One (batch, head): its strided rows in q, k, v, its packed copies in the scratch, and the score rows.</summary>
    private readonly struct AttentionHead
    {
        private const float PaddingBias = -10000f;   // RecBole's additive mask value
        private const float NegligibleGap = 120f;    // e^−120 ≈ 8e-53: zero in float32, negligible in float64

        public readonly long Offset;                 // element offset of (b, row 0, head h) in [B, L, H·D]
        private readonly float* _q, _k, _v;          // strided: row i at + i·stride
        private readonly long* _pad;                 // ids[b, ·] or null
        private readonly int _l, _d, _lp, _dp, _stride, _firstVisible;
        private readonly bool _causal;               // false: every query sees all L keys (no mask at all)
        private readonly float _scale, _maxKeyNorm;
        // scratch
        private readonly float* _kT, _vT;            // [D, Lp], zero beyond L
        private readonly float* _vRows, _kRows;      // [L, Dp], zero beyond D
        private readonly float* _dK, _dV;            // [L, Dp] accumulators (backward)
        private readonly float* _s, _ds;             // [Block, Lp] scores / probabilities, dp / ds
        private readonly float* _out, _qb, _dyb;     // [Block, Dp]
        private readonly float* _keyBias;            // [L]: 0 for a real key, −inf for padding (when skipped)
        private readonly float* _mask;               // [L]: m_ij of the row being dropped (dropout only)
        private readonly ulong _seed, _dropThreshold, _firstMaskRow; // _dropThreshold 0: no dropout; row i's mask index is (_firstMaskRow + i)·L + j
        private readonly float _keep;

        public AttentionHead(in AttentionShape shape, long task, float* q, float* k, float* v, long* pad, float* scratch, bool backward)
        {
            int b = (int)(task / shape.Heads), h = (int)(task % shape.Heads);
            _l = shape.L;
            _causal = shape.Causal;
            _d = shape.D;
            _lp = shape.Lp;
            _dp = shape.Dp;
            _stride = shape.Stride;
            _scale = 1f / MathF.Sqrt(_d);
            Offset = (long)b * _l * _stride + (long)h * _d;
            _q = q + Offset;
            _k = k + Offset;
            _v = v + Offset;
            _pad = pad is null ? null : pad + (long)b * _l;
            _seed = shape.Seed;
            _dropThreshold = shape.DropThreshold;
            _keep = shape.Keep;
            _firstMaskRow = (ulong)task * (ulong)_l;

            float* p = scratch;
            _kT = Take(ref p, _d * _lp);
            PackTransposed(_k, _kT);
            if (backward)
            {
                _vT = Take(ref p, _d * _lp);
                PackTransposed(_v, _vT);
                _kRows = Take(ref p, _l * _dp);
                PackRows(_k, _kRows);
                _vRows = null;
                _dK = Take(ref p, _l * _dp);
                _dV = Take(ref p, _l * _dp);
                new Span<float>(_dK, 2 * _l * _dp).Clear();
                _s = Take(ref p, Block * _lp);
                _ds = Take(ref p, Block * _lp);
                _out = Take(ref p, Block * _dp);
                _qb = Take(ref p, Block * _dp);
                _dyb = Take(ref p, Block * _dp);
            }
            else
            {
                _vRows = Take(ref p, _l * _dp);
                PackRows(_v, _vRows);
                _vT = _kRows = _dK = _dV = _ds = _qb = _dyb = null;
                _s = Take(ref p, Block * _lp);
                _out = Take(ref p, Block * _dp);
            }

            float maxNorm = 0;
            int first = _l;
            if (_pad is not null)
            {
                for (int j = 0; j < _l; j++)
                {
                    float* kj = _k + (long)j * _stride;
                    maxNorm = MathF.Max(maxNorm, MathF.Sqrt(Dot(kj, kj, _d)));
                }
                for (int j = _l - 1; j >= 0; j--) if (_pad[j] != 0) first = j;
            }
            _maxKeyNorm = maxNorm;
            _firstVisible = first;
            _keyBias = Take(ref p, _lp);
            _mask = Take(ref p, _lp);
            if (_pad is not null)
                for (int j = 0; j < _l; j++) _keyBias[j] = _pad[j] == 0 ? float.NegativeInfinity : 0f;
        }

        private static float* Take(ref float* p, int n)
        {
            float* r = p;
            p += n;
            return r;
        }

        private void PackTransposed(float* src, float* dst)
        {
            for (int c = 0; c < _d; c++)
            {
                float* row = dst + (long)c * _lp;
                for (int j = 0; j < _l; j++) row[j] = src[(long)j * _stride + c];
                for (int j = _l; j < _lp; j++) row[j] = 0f;
            }
        }

        private void PackRows(float* src, float* dst)
        {
            for (int j = 0; j < _l; j++)
            {
                float* row = dst + (long)j * _dp;
                new ReadOnlySpan<float>(src + (long)j * _stride, _d).CopyTo(new Span<float>(row, _d));
                for (int c = _d; c < _dp; c++) row[c] = 0f;
            }
        }

        /// <summary>m_ij for the keys j &lt; n of query row i, in the mask scratch.</summary>
        private ReadOnlySpan<float> DropoutMask(int i, int n)
        {
            ulong first = (_firstMaskRow + (ulong)i) * (ulong)_l;
            for (int j = 0; j < n; j++) _mask[j] = SplitMix64(_seed, first + (ulong)j) >= _dropThreshold ? _keep : 0f;
            return new ReadOnlySpan<float>(_mask, n);
        }

        private float* QueryRow(int i0, int nr, int r) => _q + (long)(i0 + Math.Min(r, nr - 1)) * _stride;

        /// <summary>
        /// Biased scores of queries i0 … i0+nr−1 into the rows of _s; ns[r] = how many keys row r takes part in
        /// (entries from ns[r] on are not valid). Returns the largest ns[r].
        /// </summary>
        private int ScoreBlock(int i0, int nr, int* ns)
        {
            float* q0 = QueryRow(i0, nr, 0), q1 = QueryRow(i0, nr, 1), q2 = QueryRow(i0, nr, 2), q3 = QueryRow(i0, nr, 3);
            // Causal rows need keys [0, i0 + nr); a row with no visible key, or a non-causal row, needs all L.
            int keys = !_causal || (_pad is not null && _firstVisible > i0) ? _l : i0 + nr;
            int computed = RoundUp8(keys);
            ScoreKernel(q0, q1, q2, q3, _d, _kT, _lp, 0, computed, _scale, _s);
            int most = 0;
            for (int r = 0; r < nr; r++)
            {
                ns[r] = Plan(i0 + r, _s + r * _lp, ref computed, q0, q1, q2, q3);
                most = Math.Max(most, ns[r]);
            }
            return most;
        }

        /// <summary>Applies the bias to the raw scores s of query i (see the top of the file); returns the key count.</summary>
        private int Plan(int i, float* s, ref int computed, float* q0, float* q1, float* q2, float* q3)
        {
            if (!_causal)
            {
                // Bidirectional with ids (RecBole's bidirectional mask): −10000 on every padding key, literally (all L
                // keys are computed anyway); with no real key at all the common −10000 cancels and is left out.
                if (_pad is not null && _firstVisible < _l)
                    for (int j = 0; j < _l; j++) if (_pad[j] == 0) s[j] += PaddingBias;
                return _l;
            }
            if (_pad is null) return i + 1;
            // Every key carries the same −10000: it cancels; all L keys take part (computed covers them).
            if (_firstVisible > i) return _l;

            float* qi = _q + (long)i * _stride;
            float bound = MathF.Sqrt(Dot(qi, qi, _d)) * _maxKeyNorm * _scale; // |s_ij| ≤ bound for every key
            // The largest visible score is ≥ −bound, so 2·bound < 10000 − gap already proves the masked keys negligible.
            bool negligible = 2f * bound < -PaddingBias - NegligibleGap;
            if (!negligible)
            {
                float maxVisible = float.NegativeInfinity;
                for (int j = 0; j <= i; j++) if (_pad[j] != 0) maxVisible = MathF.Max(maxVisible, s[j]);
                negligible = maxVisible - (bound + PaddingBias) > NegligibleGap;
            }
            if (negligible)
            {
                TensorPrimitives.Add(new ReadOnlySpan<float>(s, i + 1), new ReadOnlySpan<float>(_keyBias, i + 1), new Span<float>(s, i + 1));
                return i + 1;
            }
            // Scores large enough that a masked key could still count: RecBole's bias, literally.
            if (computed < _lp)
            {
                ScoreKernel(q0, q1, q2, q3, _d, _kT, _lp, computed, _lp, _scale, _s);
                computed = _lp;
            }
            for (int j = 0; j <= i; j++) if (_pad[j] == 0) s[j] += PaddingBias;
            for (int j = i + 1; j < _l; j++) s[j] += PaddingBias;
            return _l;
        }

        public void Forward(float* y, float* lse)
        {
            int* ns = stackalloc int[Block];
            float* inv = stackalloc float[Block];
            for (int i0 = 0; i0 < _l; i0 += Block)
            {
                int nr = Math.Min(Block, _l - i0);
                int most = ScoreBlock(i0, nr, ns);
                for (int r = 0; r < Block; r++)
                {
                    float* s = _s + r * _lp;
                    if (r >= nr) { new Span<float>(s, most).Clear(); continue; }
                    var row = new Span<float>(s, ns[r]);
                    float m = TensorPrimitives.Max(row);
                    TensorPrimitives.Subtract(row, m, row);
                    TensorPrimitives.Exp(row, row);
                    float sum = TensorPrimitives.Sum(row);
                    lse[i0 + r] = m + MathF.Log(sum);
                    inv[r] = 1f / sum;
                    if (_dropThreshold != 0) TensorPrimitives.Multiply(row, DropoutMask(i0 + r, ns[r]), row);
                    new Span<float>(s + ns[r], most - ns[r]).Clear();
                }
                MatrixKernel(_s, _lp, most, _vRows, _dp, _out);
                for (int r = 0; r < nr; r++)
                    TensorPrimitives.Multiply(new ReadOnlySpan<float>(_out + r * _dp, _d), inv[r], new Span<float>(y + (long)(i0 + r) * _stride, _d));
            }
        }

        public void Backward(float* y, float* lse, float* dy, float* dq, float* dk, float* dv)
        {
            int* ns = stackalloc int[Block];
            for (int i0 = 0; i0 < _l; i0 += Block)
            {
                int nr = Math.Min(Block, _l - i0);
                int most = ScoreBlock(i0, nr, ns);
                for (int r = 0; r < Block; r++)
                {
                    float* s = _s + r * _lp, qb = _qb + r * _dp, dyb = _dyb + r * _dp;
                    new Span<float>(qb, _dp).Clear();
                    new Span<float>(dyb, _dp).Clear();
                    if (r >= nr) { new Span<float>(s, most).Clear(); continue; }
                    var row = new Span<float>(s, ns[r]);
                    TensorPrimitives.Subtract(row, lse[i0 + r], row);
                    TensorPrimitives.Exp(row, row); // p_ij
                    new Span<float>(s + ns[r], most - ns[r]).Clear();
                    long oi = (long)(i0 + r) * _stride;
                    new ReadOnlySpan<float>(_q + oi, _d).CopyTo(new Span<float>(qb, _d));
                    new ReadOnlySpan<float>(dy + oi, _d).CopyTo(new Span<float>(dyb, _d));
                }
                // dp = dy · vᵀ, then ds = p (m·dp − D_i) / √D in place; with dropout p becomes a = p·m afterwards
                ScoreKernel(_dyb, _dyb + _dp, _dyb + 2 * _dp, _dyb + 3 * _dp, _d, _vT, _lp, 0, RoundUp8(most), 1f, _ds);
                for (int r = 0; r < Block; r++)
                {
                    float* p = _s + r * _lp, ds = _ds + r * _lp;
                    float di = r < nr ? Dot(dy + (long)(i0 + r) * _stride, y + (long)(i0 + r) * _stride, _d) : 0f;
                    if (_dropThreshold == 0 || r >= nr)
                    {
                        SoftmaxGrad(p, ds, di, _scale, most);
                        continue;
                    }
                    var mask = DropoutMask(i0 + r, ns[r]);
                    var dpRow = new Span<float>(ds, ns[r]);
                    TensorPrimitives.Multiply(dpRow, mask, dpRow);
                    SoftmaxGrad(p, ds, di, _scale, most);
                    var pRow = new Span<float>(p, ns[r]);
                    TensorPrimitives.Multiply(pRow, mask, pRow);
                }
                MatrixKernel(_ds, _lp, most, _kRows, _dp, _out);        // dq rows
                for (int r = 0; r < nr; r++)
                    new ReadOnlySpan<float>(_out + r * _dp, _d).CopyTo(new Span<float>(dq + (long)(i0 + r) * _stride, _d));
                OuterKernel(_ds, _lp, most, _qb, _dp, _dK);             // dK += dsᵀ Q
                OuterKernel(_s, _lp, most, _dyb, _dp, _dV);             // dV += aᵀ dY
            }
            for (int j = 0; j < _l; j++)
            {
                long o = (long)j * _stride;
                new ReadOnlySpan<float>(_dK + (long)j * _dp, _d).CopyTo(new Span<float>(dk + o, _d));
                new ReadOnlySpan<float>(_dV + (long)j * _dp, _d).CopyTo(new Span<float>(dv + o, _d));
            }
        }
    }

    /// <summary>s[r, j] = scale · Σ_{c&lt;d} a_r[c] · bT[c, j] for the 4 rows r and j in [j0, j1) (multiples of 8).</summary>
    private static void ScoreKernel(float* a0, float* a1, float* a2, float* a3, int d, float* bT, int lp, int j0, int j1, float scale, float* s)
    {
        var vs = Vector256.Create(scale);
        int j = j0;
        for (; j + 16 <= j1; j += 16)
        {
            Vector256<float> c00 = default, c01 = default, c10 = default, c11 = default,
                             c20 = default, c21 = default, c30 = default, c31 = default;
            float* col = bT + j;
            for (int c = 0; c < d; c++, col += lp)
            {
                var b0 = Vector256.Load(col);
                var b1 = Vector256.Load(col + 8);
                var x = Vector256.Create(a0[c]);
                c00 = Vector256.FusedMultiplyAdd(x, b0, c00); c01 = Vector256.FusedMultiplyAdd(x, b1, c01);
                x = Vector256.Create(a1[c]);
                c10 = Vector256.FusedMultiplyAdd(x, b0, c10); c11 = Vector256.FusedMultiplyAdd(x, b1, c11);
                x = Vector256.Create(a2[c]);
                c20 = Vector256.FusedMultiplyAdd(x, b0, c20); c21 = Vector256.FusedMultiplyAdd(x, b1, c21);
                x = Vector256.Create(a3[c]);
                c30 = Vector256.FusedMultiplyAdd(x, b0, c30); c31 = Vector256.FusedMultiplyAdd(x, b1, c31);
            }
            Vector256.Store(c00 * vs, s + j); Vector256.Store(c01 * vs, s + j + 8);
            Vector256.Store(c10 * vs, s + lp + j); Vector256.Store(c11 * vs, s + lp + j + 8);
            Vector256.Store(c20 * vs, s + 2 * lp + j); Vector256.Store(c21 * vs, s + 2 * lp + j + 8);
            Vector256.Store(c30 * vs, s + 3 * lp + j); Vector256.Store(c31 * vs, s + 3 * lp + j + 8);
        }
        for (; j < j1; j += 8)
        {
            Vector256<float> c0 = default, c1 = default, c2 = default, c3 = default;
            float* col = bT + j;
            for (int c = 0; c < d; c++, col += lp)
            {
                var b0 = Vector256.Load(col);
                c0 = Vector256.FusedMultiplyAdd(Vector256.Create(a0[c]), b0, c0);
                c1 = Vector256.FusedMultiplyAdd(Vector256.Create(a1[c]), b0, c1);
                c2 = Vector256.FusedMultiplyAdd(Vector256.Create(a2[c]), b0, c2);
                c3 = Vector256.FusedMultiplyAdd(Vector256.Create(a3[c]), b0, c3);
            }
            Vector256.Store(c0 * vs, s + j);
            Vector256.Store(c1 * vs, s + lp + j);
            Vector256.Store(c2 * vs, s + 2 * lp + j);
            Vector256.Store(c3 * vs, s + 3 * lp + j);
        }
    }

    /// <summary>o[r, c] = Σ_{j&lt;n} p[r, j] · b[j, c] for the 4 rows r and c &lt; dp (b: [n, dp], dp a multiple of 8).</summary>
    private static void MatrixKernel(float* p, int lp, int n, float* b, int dp, float* o)
    {
        int c = 0;
        for (; c + 16 <= dp; c += 16)
        {
            Vector256<float> c00 = default, c01 = default, c10 = default, c11 = default,
                             c20 = default, c21 = default, c30 = default, c31 = default;
            float* row = b + c;
            for (int j = 0; j < n; j++, row += dp)
            {
                var b0 = Vector256.Load(row);
                var b1 = Vector256.Load(row + 8);
                var x = Vector256.Create(p[j]);
                c00 = Vector256.FusedMultiplyAdd(x, b0, c00); c01 = Vector256.FusedMultiplyAdd(x, b1, c01);
                x = Vector256.Create(p[lp + j]);
                c10 = Vector256.FusedMultiplyAdd(x, b0, c10); c11 = Vector256.FusedMultiplyAdd(x, b1, c11);
                x = Vector256.Create(p[2 * lp + j]);
                c20 = Vector256.FusedMultiplyAdd(x, b0, c20); c21 = Vector256.FusedMultiplyAdd(x, b1, c21);
                x = Vector256.Create(p[3 * lp + j]);
                c30 = Vector256.FusedMultiplyAdd(x, b0, c30); c31 = Vector256.FusedMultiplyAdd(x, b1, c31);
            }
            Vector256.Store(c00, o + c); Vector256.Store(c01, o + c + 8);
            Vector256.Store(c10, o + dp + c); Vector256.Store(c11, o + dp + c + 8);
            Vector256.Store(c20, o + 2 * dp + c); Vector256.Store(c21, o + 2 * dp + c + 8);
            Vector256.Store(c30, o + 3 * dp + c); Vector256.Store(c31, o + 3 * dp + c + 8);
        }
        for (; c < dp; c += 8)
        {
            Vector256<float> c0 = default, c1 = default, c2 = default, c3 = default;
            float* row = b + c;
            for (int j = 0; j < n; j++, row += dp)
            {
                var b0 = Vector256.Load(row);
                c0 = Vector256.FusedMultiplyAdd(Vector256.Create(p[j]), b0, c0);
                c1 = Vector256.FusedMultiplyAdd(Vector256.Create(p[lp + j]), b0, c1);
                c2 = Vector256.FusedMultiplyAdd(Vector256.Create(p[2 * lp + j]), b0, c2);
                c3 = Vector256.FusedMultiplyAdd(Vector256.Create(p[3 * lp + j]), b0, c3);
            }
            Vector256.Store(c0, o + c);
            Vector256.Store(c1, o + dp + c);
            Vector256.Store(c2, o + 2 * dp + c);
            Vector256.Store(c3, o + 3 * dp + c);
        }
    }

    /// <summary>b[j, c] += Σ_r p[r, j] · a[r, c] for j &lt; n, c &lt; dp (a: [4, dp]; b: [n, dp]).</summary>
    private static void OuterKernel(float* p, int lp, int n, float* a, int dp, float* b)
    {
        for (int j = 0; j < n; j++)
        {
            float p0 = p[j], p1 = p[lp + j], p2 = p[2 * lp + j], p3 = p[3 * lp + j];
            if (p0 == 0f && p1 == 0f && p2 == 0f && p3 == 0f) continue; // masked or excluded key
            Vector256<float> x0 = Vector256.Create(p0), x1 = Vector256.Create(p1), x2 = Vector256.Create(p2), x3 = Vector256.Create(p3);
            float* row = b + (long)j * dp;
            for (int c = 0; c < dp; c += 8)
            {
                var acc = Vector256.Load(row + c);
                acc = Vector256.FusedMultiplyAdd(x0, Vector256.Load(a + c), acc);
                acc = Vector256.FusedMultiplyAdd(x1, Vector256.Load(a + dp + c), acc);
                acc = Vector256.FusedMultiplyAdd(x2, Vector256.Load(a + 2 * dp + c), acc);
                acc = Vector256.FusedMultiplyAdd(x3, Vector256.Load(a + 3 * dp + c), acc);
                Vector256.Store(acc, row + c);
            }
        }
    }

    /// <summary>ds[j] = p[j] · (dp[j] − di) · scale for j &lt; n, in place over dp.</summary>
    private static void SoftmaxGrad(float* p, float* ds, float di, float scale, int n)
    {
        int j = 0;
        Vector256<float> vd = Vector256.Create(di), vs = Vector256.Create(scale);
        for (; j + 8 <= n; j += 8)
            Vector256.Store(Vector256.Load(p + j) * (Vector256.Load(ds + j) - vd) * vs, ds + j);
        for (; j < n; j++) ds[j] = p[j] * (ds[j] - di) * scale;
    }

    /// <summary>Σ a[i]·b[i], FMA over 8 lanes then the tail.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Dot(float* a, float* b, int n)
    {
        int i = 0;
        float s = 0;
        if (n >= 8)
        {
            var acc = Vector256<float>.Zero;
            for (; i <= n - 8; i += 8) acc = Vector256.FusedMultiplyAdd(Vector256.Load(a + i), Vector256.Load(b + i), acc);
            s = Vector256.Sum(acc);
        }
        for (; i < n; i++) s += a[i] * b[i];
        return s;
    }
}
