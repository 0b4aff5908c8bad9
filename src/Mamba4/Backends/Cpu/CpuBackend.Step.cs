using System.Runtime.Intrinsics;
using Mamba4.Tensors;

namespace Mamba4.Backends.Cpu;

public sealed unsafe partial class CpuBackend
{
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
                py[i] = silu ? SiLU.Apply(acc) : acc;
            }
        });
    }

    // dt = softplus(δ + bias); h ← exp(dt·A)·h + dt·B·u; y = C·h + D·u; y ·= silu(z).
    public void SelectiveScanStep(Tensor u, Tensor delta, Tensor a, Tensor b, Tensor c, Tensor? d, Tensor? z, Tensor? deltaBias,
        bool deltaSoftplus, bool selective, Tensor ssmState, Tensor y)
    {
        int batch = u.Shape[0], dim = u.Shape[1], n = a.Shape[1];
        float* pu = u.F32, pdl = delta.F32, pa = a.F32, pB = b.F32, pC = c.F32, py = y.F32, ph = ssmState.F32;
        float* pD = d is null ? null : d.F32, pz = z is null ? null : z.F32, pbias = deltaBias is null ? null : deltaBias.F32;
        // grain 2048: one stream of d_inner ≤ 2048 runs inline — measured (1, 1536, 16), interleaved medians:
        // 85 µs inline vs 139 µs split over 2 threads (the hand-off costs more than half the work)
        CpuParallel.For((long)batch * dim, 2048, (s0, s1) =>
        {
            for (long i = s0; i < s1; i++)
            {
                long bi = i / dim, ch = i % dim;
                float dt = pdl[i] + (pbias != null ? pbias[ch] : 0f);
                if (deltaSoftplus) dt = Simd.Softplus(dt);
                float ui = pu[i];
                float* h = ph + i * n;
                float* ar = pa + ch * n;
                float* br = selective ? pB + bi * n : pB + ch * n;
                float* cr = selective ? pC + bi * n : pC + ch * n;
                float acc = 0f;
                int s = 0;
                if (Vector256.IsHardwareAccelerated)
                {
                    var vdt = Vector256.Create(dt);
                    var vdtu = Vector256.Create(dt * ui);
                    var vacc = Vector256<float>.Zero;
                    for (; s <= n - 8; s += 8)
                    {
                        var hv = Simd.Exp(vdt * Vector256.Load(ar + s)) * Vector256.Load(h + s) + vdtu * Vector256.Load(br + s);
                        Vector256.Store(hv, h + s);
                        vacc += hv * Vector256.Load(cr + s);
                    }
                    acc = Vector256.Sum(vacc);
                }
                for (; s < n; s++)
                {
                    float hv = MathF.Exp(dt * ar[s]) * h[s] + dt * br[s] * ui;
                    h[s] = hv;
                    acc += hv * cr[s];
                }
                if (pD != null) acc += pD[ch] * ui;
                if (pz != null) acc = Gate.Apply(acc, pz[i]);
                py[i] = acc;
            }
        });
    }
}
