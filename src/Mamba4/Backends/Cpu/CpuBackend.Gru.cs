using System.Numerics.Tensors;
using System.Runtime.Intrinsics;
using Mamba4.Tensors;

namespace Mamba4.Backends.Cpu;

// The GRU recurrence (torch.nn.GRU semantics, gate rows ordered r, z, n in W_hh and b_hh).
// The input projection gi = x W_ihᵀ + b_ih is one GEMM outside the kernel (Ops.Gru); here, per step t:
//   gh_t = h_{t−1} W_hhᵀ + b_hh                     (one [batch, H] × [H, 3H] GEMM per step)
//   r_t  = σ(gi_r + gh_r),   z_t = σ(gi_z + gh_z),   hn_t = gh_n
//   n_t  = tanh(gi_n + r_t ⊙ hn_t)
//   h_t  = (1 − z_t) ⊙ n_t + z_t ⊙ h_{t−1}           (h_{−1} = h0, or 0)
// Saved per step: gates[b, t] = (r, z, n, hn), 4H floats.
// Backward through time, with g_t = dy_t + (gradient reaching h_t from step t+1):
//   dn = g (1 − z),   dz = g (h_{t−1} − n)
//   da_n = dn (1 − n²)                               (a_n = gi_n + r ⊙ hn)
//   da_r = da_n ⊙ hn ⊙ r (1 − r),   da_z = dz ⊙ z (1 − z)
//   dgi_t = (da_r, da_z, da_n),   dgh_t = (da_r, da_z, da_n ⊙ r)
//   dh_{t−1} = g ⊙ z + dgh_t W_hh
//   dW_hh = Σ_t dgh_tᵀ h_{t−1},   db_hh = Σ_t Σ_b dgh_t,   dh0 = dh_{−1}
public sealed unsafe partial class CpuBackend
{
    public void GruForward(Tensor gi, Tensor wHh, Tensor? bHh, Tensor? h0, Tensor y, Tensor gates)
    {
        int batch = gi.Shape[0], len = gi.Shape[1], g3 = gi.Shape[2], h = g3 / 3;
        float* pgi = gi.F32, pw = wHh.F32, pb = bHh is null ? null : bHh.F32, ph0 = h0 is null ? null : h0.F32;
        float* py = y.F32, pg = gates.F32;
        using var ghT = Tensor.Empty(new Shape(batch, g3));
        float* gh = ghT.F32;
        for (int t = 0; t < len; t++)
        {
            // h_{t−1}: row b at prev + b·ldPrev (null: the zero state).
            float* prev = t > 0 ? py + (long)(t - 1) * h : ph0;
            int ldPrev = t > 0 ? len * h : h;
            if (prev != null) CpuGemm.Sgemm(false, true, batch, g3, h, 1f, prev, ldPrev, pw, h, 0f, gh, g3);
            else new Span<float>(gh, batch * g3).Clear();
            int step = t;
            CpuParallel.For(batch, Math.Max(1, 4096 / Math.Max(1, h)), (b0, b1) =>
            {
                for (long b = b0; b < b1; b++)
                {
                    float* giRow = pgi + (b * len + step) * g3, ghRow = gh + b * g3;
                    float* gRow = pg + (b * len + step) * 4L * h;
                    var r = new Span<float>(gRow, h);
                    var z = new Span<float>(gRow + h, h);
                    var n = new Span<float>(gRow + 2 * h, h);
                    var hn = new Span<float>(gRow + 3 * h, h);
                    var y = new Span<float>(py + (b * len + step) * h, h);
                    // r = σ(gi_r + gh_r + b_r), z = σ(gi_z + gh_z + b_z), hn = gh_n + b_n
                    TensorPrimitives.Add(new ReadOnlySpan<float>(giRow, h), new ReadOnlySpan<float>(ghRow, h), r);
                    TensorPrimitives.Add(new ReadOnlySpan<float>(giRow + h, h), new ReadOnlySpan<float>(ghRow + h, h), z);
                    new ReadOnlySpan<float>(ghRow + 2 * h, h).CopyTo(hn);
                    if (pb != null)
                    {
                        TensorPrimitives.Add(r, new ReadOnlySpan<float>(pb, h), r);
                        TensorPrimitives.Add(z, new ReadOnlySpan<float>(pb + h, h), z);
                        TensorPrimitives.Add(hn, new ReadOnlySpan<float>(pb + 2 * h, h), hn);
                    }
                    TensorPrimitives.Sigmoid(r, r);
                    TensorPrimitives.Sigmoid(z, z);
                    // n = tanh(gi_n + r ⊙ hn)
                    TensorPrimitives.FusedMultiplyAdd(r, hn, new ReadOnlySpan<float>(giRow + 2 * h, h), n);
                    TensorPrimitives.Tanh(n, n);
                    // h_t = n + z ⊙ (h_{t−1} − n)
                    if (prev == null) TensorPrimitives.Negate(n, y);
                    else TensorPrimitives.Subtract(new ReadOnlySpan<float>(prev + b * ldPrev, h), n, y);
                    TensorPrimitives.FusedMultiplyAdd(z, y, n, y);
                }
            });
        }
    }

    public void GruBackward(Tensor wHh, Tensor? h0, Tensor y, Tensor gates, Tensor dy, Tensor dGi, Tensor dWhh, Tensor? dBhh, Tensor? dH0)
    {
        int batch = y.Shape[0], len = y.Shape[1], h = y.Shape[2], g3 = 3 * h;
        float* pw = wHh.F32, ph0 = h0 is null ? null : h0.F32, py = y.F32, pg = gates.F32, pdy = dy.F32, pdgi = dGi.F32;
        using var dghT = Tensor.Empty(new Shape(batch, len, g3));
        using var carryT = Tensor.Zeros(new Shape(batch, h));
        float* dgh = dghT.F32, carry = carryT.F32;
        for (int t = len - 1; t >= 0; t--)
        {
            float* prev = t > 0 ? py + (long)(t - 1) * h : ph0;
            int ldPrev = t > 0 ? len * h : h;
            int step = t;
            CpuParallel.For(batch, Math.Max(1, 4096 / Math.Max(1, h)), (b0, b1) =>
            {
                for (long b = b0; b < b1; b++)
                {
                    long row = b * len + step;
                    float* gRow = pg + row * 4L * h, dyRow = pdy + row * h, c = carry + b * h;
                    float* dgiRow = pdgi + row * g3, dghRow = dgh + row * g3;
                    float* hp = prev == null ? null : prev + b * ldPrev;
                    int j = 0;
                    if (Vector256.IsHardwareAccelerated)
                        for (; j <= h - 8; j += 8)
                        {
                            var g = Vector256.Load(dyRow + j) + Vector256.Load(c + j);
                            var r = Vector256.Load(gRow + j);
                            var z = Vector256.Load(gRow + h + j);
                            var n = Vector256.Load(gRow + 2 * h + j);
                            var hn = Vector256.Load(gRow + 3 * h + j);
                            var hPrev = hp == null ? Vector256<float>.Zero : Vector256.Load(hp + j);
                            var one = Vector256<float>.One;
                            var dan = g * (one - z) * (one - n * n);
                            var dar = dan * hn * r * (one - r);
                            var daz = g * (hPrev - n) * z * (one - z);
                            dar.Store(dgiRow + j);
                            daz.Store(dgiRow + h + j);
                            dan.Store(dgiRow + 2 * h + j);
                            dar.Store(dghRow + j);
                            daz.Store(dghRow + h + j);
                            (dan * r).Store(dghRow + 2 * h + j);
                            (g * z).Store(c + j);
                        }
                    for (; j < h; j++)
                    {
                        float g = dyRow[j] + c[j];
                        float r = gRow[j], z = gRow[h + j], n = gRow[2 * h + j], hn = gRow[3 * h + j];
                        float hPrev = hp == null ? 0f : hp[j];
                        float dan = g * (1f - z) * (1f - n * n);
                        float dar = dan * hn * r * (1f - r);
                        float daz = g * (hPrev - n) * z * (1f - z);
                        dgiRow[j] = dar;
                        dgiRow[h + j] = daz;
                        dgiRow[2 * h + j] = dan;
                        dghRow[j] = dar;
                        dghRow[h + j] = daz;
                        dghRow[2 * h + j] = dan * r;
                        c[j] = g * z;
                    }
                }
            });
            // carry += dgh_t W_hh  (skipped at t = 0 without h0: nothing upstream needs it)
            if (prev != null)
                CpuGemm.Sgemm(false, false, batch, h, g3, 1f, dgh + (long)t * g3, len * g3, pw, h, 1f, carry, h);
        }
        if (dH0 is not null)
        {
            if (h0 is null) throw new ArgumentException("GruBackward: dH0 given without h0");
            new ReadOnlySpan<float>(carry, batch * h).CopyTo(new Span<float>(dH0.F32, batch * h));
        }

        // dW_hh = Σ_t dgh_tᵀ h_{t−1}: one GEMM per step with the batch as the inner dimension.
        float* pdw = dWhh.F32;
        new Span<float>(pdw, g3 * h).Clear();
        for (int t = 0; t < len; t++)
        {
            float* prev = t > 0 ? py + (long)(t - 1) * h : ph0;
            if (prev == null) continue;
            int ldPrev = t > 0 ? len * h : h;
            CpuGemm.Sgemm(true, false, g3, h, batch, 1f, dgh + (long)t * g3, len * g3, prev, ldPrev, 1f, pdw, h);
        }
        if (dBhh is not null)
        {
            using var view = dghT.Reshape(batch * len, g3);
            SumRows(view, dBhh, accumulate: false);
        }
    }
}
