using System.Numerics.Tensors;
using Mamba4.Tensors;

namespace Mamba4.Backends.Cpu;

public sealed unsafe partial class CpuBackend
{
    // Channels last: every inner step is a SIMD multiply-add across a block of channels; workers own
    // disjoint channel blocks, so the weight-gradient sums need no synchronisation.
    public void CausalConv1dForward(Tensor x, Tensor weight, Tensor? bias, bool silu, Tensor y, Tensor? yBf16 = null)
    {
        ConvForward(x, weight, bias, silu, y);
        if (yBf16 is not null)
            using (var rounded = y.To(DType.BF16)) yBf16.CopyFrom(rounded);
    }

    private void ConvForward(Tensor x, Tensor weight, Tensor? bias, bool silu, Tensor y)
    {
        int batch = x.Shape[0], len = x.Shape[1], d = x.Shape[2], k = weight.Shape[2];
        using var wt = TransposeConvWeight(weight);
        float* px = x.F32, py = y.F32, pw = wt.F32, pb = bias is null ? null : bias.F32;
        ForChannelBlocks(d, (c0, c1) =>
        {
            int w = c1 - c0;
            for (int b = 0; b < batch; b++)
                for (int t = 0; t < len; t++)
                {
                    float* yp = py + ((long)b * len + t) * d + c0;
                    var yr = new Span<float>(yp, w);
                    if (pb != null) new ReadOnlySpan<float>(pb + c0, w).CopyTo(yr); else yr.Clear();
                    for (int j = Math.Max(0, k - 1 - t); j < k; j++)
                        TensorPrimitives.MultiplyAdd(new ReadOnlySpan<float>(px + ((long)b * len + t - k + 1 + j) * d + c0, w),
                            new ReadOnlySpan<float>(pw + (long)j * d + c0, w), yr, yr);
                    if (silu) Simd.Map<SiLU>(yp, yp, w);
                }
        });
    }

    public void CausalConv1dBackward(Tensor x, Tensor weight, Tensor? bias, bool silu, Tensor dy, Tensor dx, Tensor dWeight, Tensor? dBias)
    {
        if (dx.DType != DType.F32)   // (BF16: a product's operand) the F32 dx rounded
        {
            using var dx32 = Tensor.Empty(x.Shape).Persist();
            CausalConv1dBackward(x, weight, bias, silu, dy, dx32, dWeight, dBias);
            dx.CopyFrom(dx32);
            return;
        }
        int batch = x.Shape[0], len = x.Shape[1], d = x.Shape[2], k = weight.Shape[2];
        // dp = dy·silu'(p): recompute the pre-activation p, then overwrite it with dp.
        using var dp = Tensor.Empty(x.Shape).Persist();
        if (silu)
        {
            ConvForward(x, weight, bias, false, dp);
            Simd.ParallelMap<SiLUGrad>(dp.F32, dy.F32, dp.F32, dp.NumElements);
        }
        else Buffer.MemoryCopy((void*)dy.DataPointer, (void*)dp.DataPointer, dp.ByteLength, dp.ByteLength);

        using var wt = TransposeConvWeight(weight);
        using var dwt = Tensor.Zeros(new Shape(k, d)).Persist();
        float* px = x.F32, pdp = dp.F32, pw = wt.F32, pdx = dx.F32, pdw = dwt.F32, pdb = dBias is null ? null : dBias.F32;
        if (pdb != null) new Span<float>(pdb, d).Clear();
        ForChannelBlocks(d, (c0, c1) =>
        {
            int w = c1 - c0;
            for (int b = 0; b < batch; b++)
                for (int s = 0; s < len; s++)
                {
                    long row = (long)b * len + s;
                    var dpr = new ReadOnlySpan<float>(pdp + row * d + c0, w);
                    if (pdb != null) TensorPrimitives.Add(new ReadOnlySpan<float>(pdb + c0, w), dpr, new Span<float>(pdb + c0, w));
                    // dw[j] += dp_s · x_{s−K+1+j}
                    for (int j = Math.Max(0, k - 1 - s); j < k; j++)
                    {
                        var dwr = new Span<float>(pdw + (long)j * d + c0, w);
                        TensorPrimitives.MultiplyAdd(dpr, new ReadOnlySpan<float>(px + (row - k + 1 + j) * d + c0, w), dwr, dwr);
                    }
                    // dx_s = Σ_j w[j] · dp_{s+K−1−j}
                    var dxr = new Span<float>(pdx + row * d + c0, w);
                    dxr.Clear();
                    for (int j = 0; j < k; j++)
                    {
                        int t = s + k - 1 - j;
                        if (t >= len) continue;
                        TensorPrimitives.MultiplyAdd(new ReadOnlySpan<float>(pdp + ((long)b * len + t) * d + c0, w),
                            new ReadOnlySpan<float>(pw + (long)j * d + c0, w), dxr, dxr);
                    }
                }
        });
        // dWeight [D, 1, K] from the [K, D] accumulator.
        float* pdW = dWeight.F32;
        for (int c = 0; c < d; c++)
            for (int j = 0; j < k; j++) pdW[(long)c * k + j] = pdw[(long)j * d + c];
    }

    /// <summary>[D, 1, K] → [K, D] so each tap's weights are contiguous across channels.</summary>
    private static Tensor TransposeConvWeight(Tensor weight)
    {
        int d = weight.Shape[0], k = weight.Shape[2];
        var wt = Tensor.Empty(new Shape(k, d)).Persist();
        float* src = weight.F32, dst = wt.F32;
        for (int c = 0; c < d; c++)
            for (int j = 0; j < k; j++) dst[(long)j * d + c] = src[(long)c * k + j];
        return wt;
    }

    private static void ForChannelBlocks(int d, Action<int, int> body)
    {
        int block = Math.Max(64, (d / (CpuParallel.Threads * 2) + 7) / 8 * 8);
        int blocks = (d + block - 1) / block;
        if (blocks == 1) { body(0, d); return; }
        Parallel.For(0, blocks, new ParallelOptions { MaxDegreeOfParallelism = CpuParallel.Threads },
            i => body(i * block, Math.Min(d, (i + 1) * block)));
    }

    // ---- recurrent step (decoding) ----
    // y[d] = b[d] + Σ_{k<K−1} w[d,k]·state[d,k] + w[d,K−1]·x[d]; then state ← (state[1:], x).
    public void CausalConv1dStep(Tensor x, Tensor convState, Tensor weight, Tensor? bias, bool silu, Tensor y)
    {
        int batch = x.Shape[0], d = x.Shape[1], k = weight.Shape[2], km1 = k - 1;
        float* px = x.F32, ps = convState.F32, pw = weight.F32, pb = bias is null ? null : bias.F32, py = y.F32;
        CpuParallel.For((long)batch * d, 4096, (s0, s1) =>
        {
            for (long i = s0; i < s1; i++)
            {
                long c = i % d;
                float* st = ps + i * km1;
                float* w = pw + c * k;
                float acc = pb != null ? pb[c] : 0f;
                for (int j = 0; j < km1; j++) acc += w[j] * st[j];
                float xi = px[i];
                acc += w[km1] * xi;
                for (int j = 0; j + 1 < km1; j++) st[j] = st[j + 1];
                if (km1 > 0) st[km1 - 1] = xi;
                py[i] = acc;
            }
            if (silu) Simd.Map<SiLU>(py + s0, py + s0, s1 - s0);   // 8 channels at a time (Simd.Sigmoid's vector exp)
        });
    }

    // state[b, c, j] = x[b, L − W + j, c] (0 before the start)
    public void CausalConv1dSaveState(Tensor x, Tensor convState)
    {
        int batch = x.Shape[0], l = x.Shape[1], d = x.Shape[2], w = convState.Shape[2];
        float* px = x.F32, ps = convState.F32;
        for (long b = 0; b < batch; b++)
            for (int c = 0; c < d; c++)
                for (int j = 0; j < w; j++)
                {
                    int t = l - w + j;
                    ps[(b * d + c) * w + j] = t >= 0 ? px[(b * l + t) * d + c] : 0f;
                }
    }

    // rows[b, j, c] = state[b, c, j]
    public void CausalConv1dStateRows(Tensor convState, Tensor rows)
    {
        int batch = convState.Shape[0], d = convState.Shape[1], w = convState.Shape[2];
        float* ps = convState.F32, pr = rows.F32;
        for (long b = 0; b < batch; b++)
            for (int j = 0; j < w; j++)
                for (int c = 0; c < d; c++) pr[(b * w + j) * d + c] = ps[(b * d + c) * w + j];
    }
}
